/* chatops: /sync events -> room commands and their replies; a clock tick -> on-call
 * handover notices. Claims and failure threads build on this (see docs/design.md). */
#include "chatops.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "commands.h"
#include "log.h"
#include "relations.h"
#include "rotation.h"
#include "strbuf.h"
#include "sync.h"

#define KV_SYNC_TOKEN "sync.next_batch"
#define KV_LAST_HANDOVER "oncall.last_handover"

/* What /sync told us about a room's state: who may command, and who created it. */
struct room_state {
	char *room;          /* configured name */
	char *room_id;
	cJSON *power_levels; /* content of m.room.power_levels, or NULL */
	char *creator;
};

struct chatops {
	struct loop *loop;
	const struct config *conn;
	const struct config *cfg;
	char *user_id;
	struct chatops_host host;
	struct sync *sync;
	struct room_state *rooms;
	size_t n_rooms;
	uint64_t tick_timer;
};

static const char *const event_types[] = {"m.room.message", "m.room.power_levels", "m.room.create"};

static struct room_state *room_by_id(struct chatops *c, const char *room_id)
{
	for (size_t i = 0; room_id && i < c->n_rooms; i++)
		if (strcmp(c->rooms[i].room_id, room_id) == 0)
			return &c->rooms[i];
	return NULL;
}

static const char *str_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- replies ------------------------------------------------------------ */

/* An m.notice that pings nobody (m.mentions empty): replies only repeat checked words. */
static cJSON *notice_new(const char *text)
{
	cJSON *content = cJSON_CreateObject();
	cJSON_AddStringToObject(content, "msgtype", "m.notice");
	cJSON_AddStringToObject(content, "body", text);
	cJSON_AddItemToObject(content, "m.mentions", cJSON_CreateObject());
	return content;
}

/* Answers in the command's thread when it was in one, else as a reply to it. */
static void reply(struct chatops *c, const struct room_state *rs, const struct sync_event *ev, const char *text)
{
	/* Help and friends end their last line with a newline; a chat message does not. */
	char *trimmed = xstrdup(text);
	size_t len = strlen(trimmed);
	while (len && (trimmed[len - 1] == '\n' || trimmed[len - 1] == ' '))
		trimmed[--len] = '\0';
	cJSON *content = notice_new(trimmed);
	free(trimmed);
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev->event, "content"),
							   "m.relates_to");
	const char *root = str_at(rel, "rel_type") && strcmp(str_at(rel, "rel_type"), "m.thread") == 0
				   ? str_at(rel, "event_id")
				   : NULL;
	if (root) {
		relations_make_thread_reply(content, root, ev->event_id);
	} else {
		cJSON *r = cJSON_AddObjectToObject(content, "m.relates_to");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "m.in_reply_to"), "event_id", ev->event_id);
	}
	/* The command's event id makes the reply's identity: a batch /sync delivers again
	 * after a crash is answered once. */
	if (c->host.post(rs->room, "reply", ev->event_id, content, c->host.data) != 0)
		log_kv(ZLOG_ERROR, "cannot queue a command reply", "room", rs->room, "event_id", ev->event_id, NULL);
	cJSON_Delete(content);
}

static void handle_command(struct chatops *c, struct room_state *rs, const struct sync_event *ev, const char *body)
{
	const struct config_chatops *co = &c->cfg->chatops;
	time_t now = (time_t)(clock_wall_ms() / 1000);
	struct commands_parsed p;
	enum commands_verb verb = commands_parse(body, co->command_prefix, now, &p);
	if (verb == COMMANDS_NONE) {
		commands_parsed_clear(&p);
		return;
	}
	log_kv(ZLOG_INFO, "room command", "room", rs->room, "sender", ev->sender, "command", commands_verb_name(verb),
	       "event_id", ev->event_id, NULL);
	long long level = commands_user_level(rs->power_levels, ev->sender, rs->creator);
	char *text = NULL;
	if (verb == COMMANDS_INVALID) {
		text = xstrdup(p.error ? p.error : "I did not understand that.");
	} else if (!commands_allowed(level, co->command_power_level)) {
		text = commands_refusal(co->command_prefix, level, co->command_power_level);
	} else {
		switch (verb) {
		case COMMANDS_HELP:
			text = commands_help(co->command_prefix, co->command_power_level);
			break;
		case COMMANDS_ONCALL:
			text = co->oncall ? rotation_describe(&co->rotation, now)
					  : xstrdup("No on-call rotation is configured (chatops.oncall).");
			break;
		case COMMANDS_STATUS: {
			struct strbuf sb = STRBUF_INIT;
			c->host.describe_status(&sb, c->host.data);
			text = strbuf_detach(&sb);
			break;
		}
		default:
			/* claims, mute, unmute need the failure tracking that is still being built. */
			text = xstrdup("This version of the bridge does not track claims or mutes yet.");
			break;
		}
	}
	reply(c, rs, ev, text ? text : "");
	free(text);
	commands_parsed_clear(&p);
}

/* ---- /sync ---------------------------------------------------------------- */

static void on_event(const struct sync_event *ev, void *data)
{
	struct chatops *c = data;
	struct room_state *rs = room_by_id(c, ev->room_id);
	if (!rs)
		return;
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev->event, "content");
	if (ev->state_key && strcmp(ev->type, "m.room.power_levels") == 0 && ev->state_key[0] == '\0') {
		cJSON_Delete(rs->power_levels);
		rs->power_levels = cJSON_IsObject(content) ? cJSON_Duplicate(content, 1) : NULL;
		return;
	}
	if (ev->state_key && strcmp(ev->type, "m.room.create") == 0) {
		const char *creator = str_at(content, "creator") ? str_at(content, "creator") : ev->sender;
		free(rs->creator);
		rs->creator = creator ? xstrdup(creator) : NULL;
		return;
	}
	/* Old messages in a state snapshot, the bridge's own, and edits are not commands. */
	if (ev->snapshot || ev->state_key || strcmp(ev->type, "m.room.message") != 0)
		return;
	if (!ev->sender || (c->user_id && strcmp(ev->sender, c->user_id) == 0))
		return;
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	if (str_at(rel, "rel_type") && strcmp(str_at(rel, "rel_type"), "m.replace") == 0)
		return;
	const char *body = str_at(content, "body");
	if (body)
		handle_command(c, rs, ev, body);
}

static char *token_load(void *data)
{
	struct chatops *c = data;
	return c->host.kv_get(KV_SYNC_TOKEN, c->host.data);
}

static void token_save(const char *token, void *data)
{
	struct chatops *c = data;
	c->host.kv_set(KV_SYNC_TOKEN, token, c->host.data);
}

/* ---- handovers ------------------------------------------------------------- */

static void post_handover(struct chatops *c, const struct rotation_handover *h)
{
	const struct rotation_config *rc = &c->cfg->chatops.rotation;
	struct rotation_oncall oc;
	char until[64] = "";
	if (rotation_oncall(rc, h->at, &oc) == 0 && oc.until)
		rotation_format_time(rc, oc.until, until, sizeof until);
	struct strbuf text = STRBUF_INIT;
	strbuf_printf(&text, "On-call handover: %s hands over to %s", h->from ? h->from : "nobody",
		      h->to ? h->to : "nobody");
	if (*until)
		strbuf_printf(&text, " (until %s)", until);
	strbuf_putc(&text, '.');
	char key[32];
	snprintf(key, sizeof key, "%lld", (long long)h->at);
	for (size_t i = 0; i < c->n_rooms; i++) {
		cJSON *content = notice_new(strbuf_str(&text));
		/* The one taking over is pinged; the one handing over is only named. */
		if (h->to)
			relations_add_mentions(content, &h->to, 1);
		c->host.post(c->rooms[i].room, "handover", key, content, c->host.data);
		cJSON_Delete(content);
	}
	log_kv(ZLOG_INFO, "on-call handover announced", "from", h->from, "to", h->to, "at", key, NULL);
	strbuf_free(&text);
}

/* Announces the handovers passed since the last look. After a long absence only the
 * latest is announced: a backlog of stale notices helps nobody. The first look ever
 * announces nothing, it only remembers the time. */
static void check_handovers(struct chatops *c)
{
	if (!c->cfg->chatops.oncall || c->n_rooms == 0)
		return;
	time_t now = (time_t)(clock_wall_ms() / 1000);
	char *last_text = c->host.kv_get(KV_LAST_HANDOVER, c->host.data);
	time_t last = last_text ? (time_t)strtoll(last_text, NULL, 10) : 0;
	free(last_text);
	if (last && now > last) {
		size_t n = 0;
		struct rotation_handover *hs = rotation_handovers(&c->cfg->chatops.rotation, last + 1, now + 1, &n);
		if (n > 0)
			post_handover(c, &hs[n - 1]);
		free(hs);
	}
	if (!last || now > last) {
		char now_text[32];
		snprintf(now_text, sizeof now_text, "%lld", (long long)now);
		c->host.kv_set(KV_LAST_HANDOVER, now_text, c->host.data);
	}
}

static void tick(struct loop *loop, void *data)
{
	struct chatops *c = data;
	check_handovers(c);
	c->tick_timer = loop_timer_add(loop, clock_tick_ms(), tick, c);
}

/* ---- life cycle ------------------------------------------------------------ */

struct chatops *chatops_new(struct loop *loop, const struct config *conn, const struct config *cfg,
			    const char *user_id, const struct chatops_host *host)
{
	struct chatops *c = xcalloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->loop = loop;
	c->conn = conn;
	c->cfg = cfg;
	c->user_id = user_id ? xstrdup(user_id) : NULL;
	c->host = *host;
	return c;
}

static void rooms_clear(struct chatops *c)
{
	for (size_t i = 0; i < c->n_rooms; i++) {
		free(c->rooms[i].room);
		free(c->rooms[i].room_id);
		free(c->rooms[i].creator);
		cJSON_Delete(c->rooms[i].power_levels);
	}
	free(c->rooms);
	c->rooms = NULL;
	c->n_rooms = 0;
}

void chatops_set_rooms(struct chatops *c, const struct chatops_room *rooms, size_t n)
{
	/* Known rooms keep what sync told about them; new ones learn it from the snapshot
	 * sync sends for rooms added to its filter. */
	struct room_state *fresh = xcalloc(n ? n : 1, sizeof *fresh);
	const char **ids = xcalloc(n ? n : 1, sizeof *ids);
	for (size_t i = 0; i < n; i++) {
		struct room_state *old = room_by_id(c, rooms[i].room_id);
		fresh[i].room = xstrdup(rooms[i].room);
		fresh[i].room_id = xstrdup(rooms[i].room_id);
		if (old) {
			fresh[i].power_levels = old->power_levels;
			fresh[i].creator = old->creator;
			old->power_levels = NULL;
			old->creator = NULL;
		}
		ids[i] = fresh[i].room_id;
	}
	rooms_clear(c);
	c->rooms = fresh;
	c->n_rooms = n;
	if (!c->sync) {
		struct sync_callbacks cb = {
			.token_load = token_load, .token_save = token_save, .on_event = on_event, .data = c};
		struct sync_options opt = {.retry_min_ms = c->conn->matrix.retry_min_ms,
					   .retry_max_ms = c->conn->matrix.retry_max_ms};
		c->sync = sync_new(c->loop, &c->conn->matrix, ids, n, event_types,
				   sizeof event_types / sizeof event_types[0], &cb, &opt);
		if (c->sync)
			sync_start(c->sync);
		c->tick_timer = loop_timer_add(c->loop, clock_tick_ms(), tick, c);
	} else {
		sync_set_rooms(c->sync, ids, n);
	}
	free(ids);
}

void chatops_reload(struct chatops *c, const struct config *cfg)
{
	c->cfg = cfg;
}

void chatops_free(struct chatops *c)
{
	if (!c)
		return;
	sync_free(c->sync);
	loop_timer_cancel(c->loop, c->tick_timer);
	rooms_clear(c);
	free(c->user_id);
	free(c);
}
