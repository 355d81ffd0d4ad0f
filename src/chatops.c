/* chatops: the room side's life cycle and heartbeat: /sync events dispatched to commands,
 * claims and reactions; the tick that runs the calendar work; the rebuild from the rooms.
 * The other parts live in chatops_*.c (see chatops_internal.h). */
#include "chatops_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "commands.h"
#include "log.h"
#include "rebuild.h"
#include "relations.h"
#include "rotation.h"
#include "strbuf.h"
#include "sync.h"

/* m.room.member for the bridge's own: a kick or a ban pauses the room's deliveries. */
static const char *const event_types[] = {"m.room.message",  "m.room.power_levels", "m.room.create",
					  "m.reaction",      "m.room.redaction",    "m.room.member",
					  "m.room.encryption", "m.room.encrypted", "m.room.topic"};


struct room_state *chatops_room_by_id(struct chatops *c, const char *room_id)
{
	for (size_t i = 0; room_id && i < c->n_rooms; i++)
		if (strcmp(c->rooms[i].room_id, room_id) == 0)
			return &c->rooms[i];
	return NULL;
}

bool chatops_room_is(const struct chatops *c, const char *room, const char *room_id)
{
	for (size_t i = 0; room && room_id && i < c->n_rooms; i++)
		if (strcmp(c->rooms[i].room, room) == 0 && strcmp(c->rooms[i].room_id, room_id) == 0)
			return true;
	return false;
}

const char *chatops_str_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *chatops_kv_json(struct chatops *c, const char *key, int type)
{
	char *json = c->host.kv_get(key, c->host.data);
	cJSON *v = json ? cJSON_Parse(json) : NULL;
	free(json);
	if (!v || (v->type & 0xFF) != type) {
		cJSON_Delete(v);
		v = type == cJSON_Array ? cJSON_CreateArray() : cJSON_CreateObject();
	}
	return v;
}

void chatops_kv_put_json(struct chatops *c, const char *key, const cJSON *value)
{
	char *json = cJSON_PrintUnformatted(value);
	c->host.kv_set(key, json, c->host.data);
	cJSON_free(json);
}

/* ---- replies ------------------------------------------------------------ */

/* An m.notice that pings nobody (m.mentions empty): replies only repeat checked words. */
cJSON *chatops_notice_new(const char *text)
{
	cJSON *content = cJSON_CreateObject();
	cJSON_AddStringToObject(content, "msgtype", "m.notice");
	cJSON_AddStringToObject(content, "body", text);
	cJSON_AddItemToObject(content, "m.mentions", cJSON_CreateObject());
	return content;
}


/* ---- /sync ---------------------------------------------------------------- */

static void on_event(const struct sync_event *ev, void *data)
{
	struct chatops *c = data;
	struct room_state *rs = chatops_room_by_id(c, ev->room_id);
	if (!rs)
		return;
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev->event, "content");
	if (ev->state_key && strcmp(ev->type, "m.room.member") == 0) {
		if (c->user_id && strcmp(ev->state_key, c->user_id) == 0 && c->host.own_membership)
			c->host.own_membership(ev->room_id, chatops_str_at(content, "membership"), ev->sender,
					       chatops_str_at(content, "reason"), c->host.data);
		return; /* others' comings and goings are not the bridge's business */
	}
	if (ev->state_key && strcmp(ev->type, "m.room.power_levels") == 0 && ev->state_key[0] == '\0') {
		/* The same levels again (a full_state snapshot) are no news for the topic. */
		if (!rs->power_levels || !cJSON_Compare(rs->power_levels, content, true))
			chatops_topic_power_changed(c, rs->room_id);
		cJSON_Delete(rs->power_levels);
		rs->power_levels = cJSON_IsObject(content) ? cJSON_Duplicate(content, 1) : NULL;
		return;
	}
	if (ev->state_key && strcmp(ev->type, "m.room.create") == 0) {
		chatops_room_create_event(rs, ev->event);
		return;
	}
	if (ev->state_key && strcmp(ev->type, "m.room.topic") == 0 && ev->state_key[0] == '\0') {
		chatops_topic_event(c, rs->room_id, content);
		return;
	}
	if (ev->state_key && strcmp(ev->type, "m.room.encryption") == 0) {
		if (c->host.room_encrypted)
			c->host.room_encrypted(ev->room_id, c->host.data);
		return;
	}
	if (ev->snapshot || ev->state_key || !ev->sender)
		return; /* old state is not the room talking */
	if (c->user_id && strcmp(ev->sender, c->user_id) == 0) {
		/* The bridge's own doings are not the room talking either. But its own message back
		 * through /sync, named by its transaction id (the homeserver adds it for the device
		 * that sent it), gives the failure its event id: a reaction to it can come in the
		 * same batch, before the send's own answer is read, and must find its failure. */
		const char *txn = chatops_str_at(cJSON_GetObjectItemCaseSensitive(ev->event, "unsigned"),
						 "transaction_id");
		if (txn && strcmp(ev->type, "m.room.message") == 0)
			chatops_delivered(c, txn, ev->event_id);
		return;
	}
	if (strcmp(ev->type, "m.room.encrypted") == 0) {
		/* The bridge has no keys (no maintained C library does Matrix encryption): say
		 * once per room that commands there go unheard, rather than ignore them silently. */
		log_kv(rs->unreadable_logged ? ZLOG_DEBUG : ZLOG_WARN,
		       "an encrypted message cannot be read; commands in this room are not answered", "room", rs->room,
		       "sender", ev->sender, "event_id", ev->event_id, NULL);
		rs->unreadable_logged = true;
		return;
	}
	if (strcmp(ev->type, "m.reaction") == 0) {
		if (chatops_actions_on_reaction(c, rs, ev, content))
			return; /* a 🔁 recheck, or the confirmation of an action on Zuul */
		if (c->cfg->chatops.claims)
			chatops_on_reaction(c, rs, ev, content);
		return;
	}
	if (strcmp(ev->type, "m.room.redaction") == 0) {
		if (c->cfg->chatops.claims)
			chatops_on_redaction(c, rs, ev, content);
		return;
	}
	if (strcmp(ev->type, "m.room.message") != 0 || !c->cfg->chatops.commands)
		return;
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	if (chatops_str_at(rel, "rel_type") && strcmp(chatops_str_at(rel, "rel_type"), "m.replace") == 0)
		return;
	const char *body = chatops_str_at(content, "body");
	if (body)
		chatops_handle_command(c, rs, ev, body);
}

static void on_invite(const char *room_id, const cJSON *invite_state, void *data)
{
	struct chatops *c = data;
	if (c->host.invited)
		c->host.invited(room_id, invite_state, c->host.data);
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
	/* The first position: from here on /sync sees every reaction to what is posted, so
	 * reports may come (a claim on a report posted before it would be history, unseen). */
	if (c->history_pending) {
		c->history_pending = false;
		if (c->host.history_known)
			c->host.history_known(c->host.data);
	}
}

/* ---- rebuilding claims from the rooms ----------------------------------------- */

bool chatops_awaits_history(const struct chatops *c)
{
	return c && c->history_pending;
}

/* Follows the rooms with /sync from now on: the history before now is known. */
static void start_sync(struct chatops *c)
{
	const char **ids = xcalloc(c->n_rooms ? c->n_rooms : 1, sizeof *ids);
	for (size_t i = 0; i < c->n_rooms; i++)
		ids[i] = c->rooms[i].room_id;
	struct sync_callbacks cb = {.token_load = token_load,
				    .token_save = token_save,
				    .on_event = on_event,
				    .on_invite = on_invite,
				    .data = c};
	struct sync_options opt = {.retry_min_ms = c->conn->matrix.retry_min_ms,
				   .retry_max_ms = c->conn->matrix.retry_max_ms,
				   .count_oversized = c->host.stats ? &c->host.stats->sync_oversized : NULL,
				   .count_empty_backoffs = c->host.stats ? &c->host.stats->sync_empty_backoffs : NULL};
	c->sync = sync_new(c->loop, &c->conn->matrix, ids, c->n_rooms, event_types,
			   sizeof event_types / sizeof event_types[0], &cb, &opt);
	if (c->sync)
		sync_start(c->sync);
	free(ids);
}

/* Puts one failure found in a room back into the store with its live claims. Escalation
 * steps already due count as taken: a rebuild must not page anyone for old news. */
static size_t restore_failure(struct chatops *c, const struct rebuild_failure *rf, const char *room)
{
	unsigned due = 0;
	if (c->cfg->chatops.oncall)
		due = rotation_escalation_due(&c->cfg->chatops.rotation, (time_t)(rf->opened_ms / 1000),
					      (time_t)(clock_wall_ms() / 1000));
	struct store_failure f = {
		.txn_id = rf->txn,
		.room = (char *)room,
		.route = rf->route,
		.event_key = rf->key,
		.content_json = rf->content_json,
		.opened_ms = rf->opened_ms,
		.event_id = rf->event_id,
		.thread_key = rf->thread_key,
		.count = rf->count,
		.last_ms = rf->edited_ms ? rf->edited_ms : rf->opened_ms,
		.recovered_ms = rf->recovered_ms,
		.escalated = rf->escalated | due,
	};
	if (store_failure_restore(c->store, &f) != 1)
		return 0;
	size_t claims = 0;
	for (size_t i = 0; i < rf->n_reactions; i++) {
		const struct rebuild_reaction *r = &rf->reactions[i];
		const char *kind = commands_reaction_matches(r->key, c->cfg->chatops.claim_reaction)     ? "claim"
				   : commands_reaction_matches(r->key, c->cfg->chatops.resolve_reaction) ? "resolve"
												     : NULL;
		if (kind && store_claim_add(c->store, r->event_id, rf->txn, r->sender, kind, r->ts_ms) == 1)
			claims++;
	}
	return claims;
}

static void rebuild_done(struct rebuild_result *res, void *data)
{
	struct chatops *c = data;
	rebuild_free(c->rebuild);
	c->rebuild = NULL;
	for (size_t i = 0; i < res->n_rooms; i++) {
		const struct rebuild_room *rr = &res->rooms[i];
		const struct room_state *rs = chatops_room_by_id(c, rr->room_id);
		size_t failures = 0, claims = 0;
		for (size_t j = 0; rs && rr->complete && j < res->n_failures; j++) {
			if (strcmp(res->failures[j].room_id, rr->room_id) != 0)
				continue;
			claims += restore_failure(c, &res->failures[j], rs->room);
			failures++;
		}
		char nf[24], nc[24], ne[24];
		snprintf(nf, sizeof nf, "%zu", failures);
		snprintf(nc, sizeof nc, "%zu", claims);
		snprintf(ne, sizeof ne, "%zu", rr->events_scanned);
		if (rr->complete)
			log_kv(ZLOG_INFO, "rebuilt failures and claims from the room's history", "room",
			       rs ? rs->room : rr->room_id, "failures", nf, "claims", nc, "messages_read", ne,
			       "truncated", rr->truncated ? "yes" : "no", NULL);
		else
			log_kv(ZLOG_WARN, "cannot read the room's history; its old claims are not known", "room",
			       rs ? rs->room : rr->room_id, "reason", rr->reason, NULL);
	}
	rebuild_result_free(res);
	c->next_escalation_ms = 0;
	start_sync(c);
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
		cJSON *content = chatops_notice_new(strbuf_str(&text));
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
	chatops_expire_mutes(c);
	chatops_check_escalations(c);
	chatops_expire_incidents(c);
	chatops_check_digests(c);
	chatops_heartbeat(c);
	chatops_actions_tick(c);
	chatops_topic_tick(c);
	c->tick_timer = loop_timer_add(loop, clock_tick_ms(), tick, c);
}

/* ---- life cycle ------------------------------------------------------------ */

struct chatops *chatops_new(struct loop *loop, const struct config *conn, const struct config *cfg,
			    const char *user_id, struct store *store, const struct chatops_host *host)
{
	struct chatops *c = xcalloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->loop = loop;
	c->conn = conn;
	c->cfg = cfg;
	c->user_id = user_id ? xstrdup(user_id) : NULL;
	c->host = *host;
	c->store = store;
	chatops_mutes_load(c);
	chatops_incidents_configure(c);
	chatops_catchup_load(c);
	chatops_heartbeat_first(c);
	char *token = c->host.kv_get(KV_SYNC_TOKEN, c->host.data);
	c->history_pending = !token;
	free(token);
	return c;
}

/* The view's host: the store answers, nothing is posted or written. */
static int view_post(const char *room, const char *kind, const char *key, const cJSON *content, void *data)
{
	(void)room, (void)kind, (void)key, (void)content, (void)data;
	return 0;
}

static char *view_kv_get(const char *key, void *data)
{
	return store_kv_get(data, key);
}

static void view_kv_set(const char *key, const char *value, void *data)
{
	(void)key, (void)value, (void)data;
}

struct chatops *chatops_view_new(const struct config *cfg, struct store *store)
{
	struct chatops *c = xcalloc(1, sizeof *c);
	c->conn = cfg;
	c->cfg = cfg;
	c->store = store;
	c->host = (struct chatops_host){.post = view_post, .kv_get = view_kv_get, .kv_set = view_kv_set, .data = store};
	chatops_mutes_load(c);
	chatops_incidents_configure(c);
	chatops_catchup_load(c);
	return c;
}

static void rooms_clear(struct chatops *c)
{
	for (size_t i = 0; i < c->n_rooms; i++) {
		free(c->rooms[i].room);
		free(c->rooms[i].room_id);
		free(c->rooms[i].creator);
		cJSON_Delete(c->rooms[i].create_content);
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
		struct room_state *old = chatops_room_by_id(c, rooms[i].room_id);
		fresh[i].room = xstrdup(rooms[i].room);
		fresh[i].room_id = xstrdup(rooms[i].room_id);
		if (old) {
			fresh[i].power_levels = old->power_levels;
			fresh[i].creator = old->creator;
			fresh[i].create_content = old->create_content;
			fresh[i].create_known = old->create_known;
			fresh[i].unreadable_logged = old->unreadable_logged;
			old->create_content = NULL;
			old->power_levels = NULL;
			old->creator = NULL;
		}
		ids[i] = fresh[i].room_id;
	}
	rooms_clear(c);
	c->rooms = fresh;
	c->n_rooms = n;
	if (!c->sync && !c->rebuild) {
		c->tick_timer = loop_timer_add(c->loop, clock_tick_ms(), tick, c);
		/* No /sync position: a first start, or state_dir was lost. Either way the rooms
		 * may hold failure messages and claims this store does not know: read them back
		 * before following the rooms. */
		char *token = c->host.kv_get(KV_SYNC_TOKEN, c->host.data);
		if (!token && c->user_id && n > 0)
			c->rebuild = rebuild_start(c->loop, &c->conn->matrix, c->user_id, ids, n, NULL, rebuild_done, c);
		free(token);
		if (!c->rebuild)
			start_sync(c);
	} else if (c->sync) {
		sync_set_rooms(c->sync, ids, n);
	}
	free(ids);
	chatops_rooms_fetch_facts(c);
}

void chatops_set_user_id(struct chatops *c, const char *user_id)
{
	free(c->user_id);
	c->user_id = user_id ? xstrdup(user_id) : NULL;
}

void chatops_reload(struct chatops *c, const struct config *cfg)
{
	c->cfg = cfg;
	c->next_escalation_ms = 0;
	chatops_incidents_configure(c);
	chatops_topic_reload(c);
}

void chatops_free(struct chatops *c)
{
	if (!c)
		return;
	sync_free(c->sync);
	rebuild_free(c->rebuild);
	chatops_rooms_free(c);
	incident_tracker_free(c->incidents);
	command_budget_free(c->answer_budget);
	chatops_actions_free(c);
	chatops_topic_free(c);
	cJSON_Delete(c->catchup);
	if (c->loop)
		loop_timer_cancel(c->loop, c->tick_timer);
	rooms_clear(c);
	for (size_t i = 0; i < c->n_mutes; i++)
		chatops_mute_clear(&c->mutes[i]);
	free(c->mutes);
	free(c->user_id);
	free(c);
}
