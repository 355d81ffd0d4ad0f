/* bridge_rooms: the bridge's way into its rooms: who the bot is (whoami), joining every
 * configured room with retries, and the bot's own membership (removed, invited back). */
#include "bridge_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strbuf.h"

/* ---- Matrix start-up: whoami, then join every room ------------------------ */

static void join_room(struct bridge *b, struct room_join *rj);

static void join_retry_fired(struct loop *loop, void *data);

/* An encrypted room gets the bridge's reports only where the operator accepted that they
 * are posted unencrypted; elsewhere they go to the dead letters, saying why. */
static void apply_encryption(struct bridge *b, struct room_join *rj)
{
	struct room_stats *st = stats_room(&b->stats, rj->room);
	st->encrypted = rj->encrypted;
	st->encrypted_refused = rj->encrypted && !config_may_post_unencrypted(&b->cfg->matrix, rj->room);
	if (st->encrypted_refused) {
		log_kv(rj->encrypted_logged ? ZLOG_DEBUG : ZLOG_ERROR,
		       "room is encrypted and the bridge cannot encrypt; its reports go to dead letters "
		       "(matrix.post_unencrypted lists rooms where it may post unencrypted)",
		       "room", rj->room, "room_id", rj->room_id, NULL);
		rj->encrypted_logged = true;
		deliverer_room_failed(b->deliverer, rj->room, "room is encrypted");
		return;
	}
	if (rj->encrypted && !rj->encrypted_logged) {
		log_kv(ZLOG_WARN, "room is encrypted; posting unencrypted there as matrix.post_unencrypted allows", "room",
		       rj->room, "room_id", rj->room_id, NULL);
		rj->encrypted_logged = true;
	}
	deliverer_room_ready(b->deliverer, rj->room, rj->room_id);
}

/* Joined, and its encryption known: the room is settled. */
static void room_joined(struct bridge *b, struct room_join *rj)
{
	rj->joined = true;
	rj->failed = false;
	rj->lost = false;
	rj->attempts = 0;
	stats_room(&b->stats, rj->room)->joined = true;
	apply_encryption(b, rj);
	bridge_chatops_update(b);
	bridge_maybe_ready(b);
}

static void on_encryption_state(const struct matrix_response *r, void *data)
{
	struct room_join *rj = data;
	struct bridge *b = rj->b;
	rj->joining = false;
	const cJSON *alg = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "algorithm") : NULL;
	if (r->status == 200 || r->status == 404) {
		/* A room never stops being encrypted: what was seen stays. */
		rj->encrypted = rj->encrypted || (r->status == 200 && cJSON_IsString(alg));
		room_joined(b, rj);
		return;
	}
	/* Unknown is not "unencrypted": ask again, as for a join that could not complete. */
	struct strbuf why = STRBUF_INIT;
	matrix_response_describe(r, &why);
	rj->attempts++;
	log_kv(rj->attempts == 1 ? ZLOG_WARN : ZLOG_DEBUG, "cannot tell whether the room is encrypted yet; retrying",
	       "room", rj->room, "reason", strbuf_str(&why), NULL);
	strbuf_free(&why);
	rj->timer = loop_timer_add(b->loop,
				   deliver_backoff_ms(rj->attempts, b->conn->matrix.retry_min_ms,
						      b->conn->matrix.retry_max_ms, 0.5),
				   join_retry_fired, rj);
}

/* The room's m.room.encryption state, before anything is posted there. */
static void check_encryption(struct bridge *b, struct room_join *rj)
{
	char *room_q = matrix_escape_segment(rj->room_id);
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "/_matrix/client/v3/rooms/%s/state/m.room.encryption/", room_q);
	free(room_q);
	rj->joining = true;
	if (matrix_request(b->matrix, "GET", strbuf_str(&path), NULL, on_encryption_state, rj) != 0) {
		rj->joining = false;
		rj->timer = loop_timer_add(b->loop, (uint64_t)b->conn->matrix.retry_min_ms, join_retry_fired, rj);
	}
	strbuf_free(&path);
}

static void on_join(const struct matrix_response *r, void *data)
{
	struct room_join *rj = data;
	struct bridge *b = rj->b;
	rj->joining = false;
	const cJSON *rid = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "room_id") : NULL;
	if (r->status == 200 && cJSON_IsString(rid)) {
		free(rj->room_id);
		rj->room_id = xstrdup(rid->valuestring);
		log_kv(ZLOG_INFO, "joined room", "room", rj->room, "room_id", rid->valuestring, NULL);
		check_encryption(b, rj);
		return;
	}
	struct strbuf why = STRBUF_INIT;
	matrix_response_describe(r, &why);
	if (matrix_response_is_transient(r) || r->status == 200) {
		rj->attempts++;
		uint64_t delay = deliver_backoff_ms(rj->attempts, b->conn->matrix.retry_min_ms,
						    b->conn->matrix.retry_max_ms, 0.5);
		log_kv(rj->attempts == 1 ? ZLOG_WARN : ZLOG_DEBUG, "cannot join room yet; retrying", "room", rj->room,
		       "reason", strbuf_str(&why), NULL);
		rj->timer = loop_timer_add(b->loop, delay, join_retry_fired, rj);
	} else if (r->status == 403) {
		/* Not invited, or banned: an invite (after an unban) fixes that, not a reload. */
		log_kv(ZLOG_ERROR, "cannot join room; its reports wait in the outbox until the bot is invited",
		       "room", rj->room, "reason", strbuf_str(&why), NULL);
		rj->lost = true;
		deliverer_room_paused(b->deliverer, rj->room, strbuf_str(&why));
		bridge_chatops_update(b);
		bridge_maybe_ready(b);
	} else {
		log_kv(ZLOG_ERROR, "cannot join room; its reports go to dead letters until a reload",
		       "room", rj->room, "reason", strbuf_str(&why), NULL);
		rj->failed = true;
		deliverer_room_failed(b->deliverer, rj->room, strbuf_str(&why));
		bridge_chatops_update(b); /* the last room to settle may let /sync and MQTT start */
		bridge_maybe_ready(b);
	}
	strbuf_free(&why);
}

static void join_retry_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct room_join *rj = data;
	rj->timer = 0;
	join_room(rj->b, rj);
}

static void join_room(struct bridge *b, struct room_join *rj)
{
	loop_timer_cancel(b->loop, rj->timer);
	rj->timer = 0;
	if (matrix_join(b->matrix, rj->room, on_join, rj) == 0)
		rj->joining = true;
	else
		log_kv(ZLOG_ERROR, "cannot start a join request", "room", rj->room, NULL);
}

static void room_add(struct bridge *b, const char *room)
{
	size_t j = 0;
	while (j < b->n_rooms && strcmp(b->rooms[j]->room, room) != 0)
		j++;
	if (j == b->n_rooms) {
		struct room_join *rj = xcalloc(1, sizeof *rj);
		rj->b = b;
		rj->room = xstrdup(room);
		b->rooms = xrealloc(b->rooms, (b->n_rooms + 1) * sizeof *b->rooms);
		b->rooms[b->n_rooms++] = rj;
		stats_room(&b->stats, room);
	}
}

/* Adds every route's room, and every room owners forward failures to, to the join list
 * (once each) and joins the new ones. */
void bridge_rooms_sync(struct bridge *b)
{
	for (size_t i = 0; i < b->cfg->n_routes; i++)
		room_add(b, b->cfg->routes[i].room);
	for (size_t i = 0; b->cfg->chatops.enabled && i < b->cfg->owners.n_rules; i++)
		if (b->cfg->owners.rules[i].forward_room)
			room_add(b, b->cfg->owners.rules[i].forward_room);
	if (!b->user_id)
		return; /* joins start once whoami answered */
	for (size_t j = 0; j < b->n_rooms; j++) {
		if (!b->rooms[j]->joined && !b->rooms[j]->timer && !b->rooms[j]->joining)
			join_room(b, b->rooms[j]);
		else if (b->rooms[j]->joined && b->rooms[j]->encrypted)
			apply_encryption(b, b->rooms[j]); /* a reload may have changed post_unencrypted */
	}
}


static void whoami_retry_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct bridge *b = data;
	b->whoami_timer = 0;
	bridge_start_whoami(b);
}

static void on_whoami(const struct matrix_response *r, void *data)
{
	struct bridge *b = data;
	const cJSON *uid = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "user_id") : NULL;
	if (r->status == 200 && cJSON_IsString(uid)) {
		free(b->user_id);
		b->user_id = xstrdup(uid->valuestring);
		b->stats.matrix_reachable = true;
		log_kv(ZLOG_INFO, "Matrix homeserver reachable", "homeserver", b->conn->matrix.homeserver, "user_id",
		       b->user_id, NULL);
		b->whoami_attempts = 0;
		bridge_rooms_sync(b);
		return;
	}
	/* Even a refused token is retried: the operator may fix the file and reload, and the
	 * outbox keeps every report meanwhile. Only the first failure is loud. */
	b->whoami_attempts++;
	b->stats.matrix_reachable = false;
	struct strbuf why = STRBUF_INIT;
	matrix_response_describe(r, &why);
	log_kv(b->whoami_attempts == 1 ? (r->status == 401 ? ZLOG_ERROR : ZLOG_WARN) : ZLOG_DEBUG,
	       r->status == 401 ? "the homeserver refused the access token; deliveries wait"
				: "homeserver not reachable yet; deliveries wait",
	       "homeserver", b->conn->matrix.homeserver, "reason", strbuf_str(&why), NULL);
	strbuf_free(&why);
	uint64_t delay = deliver_backoff_ms(b->whoami_attempts, b->conn->matrix.retry_min_ms,
					    b->conn->matrix.retry_max_ms, 0.5);
	b->whoami_timer = loop_timer_add(b->loop, delay, whoami_retry_fired, b);
}

void bridge_start_whoami(struct bridge *b)
{
	if (matrix_whoami(b->matrix, on_whoami, b) != 0)
		log_kv(ZLOG_ERROR, "cannot start the whoami request", NULL);
}

/* ---- the bot's own membership: removed, invited back --------------------- */

static struct room_join *room_by_id(struct bridge *b, const char *room_id)
{
	for (size_t j = 0; room_id && j < b->n_rooms; j++)
		if (b->rooms[j]->room_id && strcmp(b->rooms[j]->room_id, room_id) == 0)
			return b->rooms[j];
	return NULL;
}

/* The bot is out of a room it was in (kicked or banned; `by` who did it, if known). Its
 * reports wait in the outbox; logged and counted once per removal. */
static void room_lost(struct bridge *b, struct room_join *rj, enum membership how, const char *by,
		      const char *reason)
{
	if (rj->lost || !rj->joined)
		return; /* known already (the other of /sync and a refused send told first) */
	rj->joined = false;
	rj->lost = true;
	struct room_stats *rs = stats_room(&b->stats, rj->room);
	rs->joined = false;
	rs->removals++;
	log_kv(ZLOG_ERROR, "the bot was removed from the room; its reports wait in the outbox until it is invited back",
	       "room", rj->room, "membership", membership_name(how), "by", by ? by : "", "reason",
	       reason ? reason : "", NULL);
	deliverer_room_paused(b->deliverer, rj->room, reason ? reason : membership_name(how));
	bridge_report_status(b);
}

void bridge_on_send_not_joined(const char *room, const char *reason, void *data)
{
	struct bridge *b = data;
	for (size_t j = 0; j < b->n_rooms; j++)
		if (strcmp(b->rooms[j]->room, room) == 0)
			room_lost(b, b->rooms[j], MEMBERSHIP_LEAVE, NULL, reason);
}

void bridge_room_seen_clear(struct room_join *rj)
{
	rj->seen = MEMBERSHIP_UNKNOWN;
	free(rj->seen_sender);
	free(rj->seen_reason);
	rj->seen_sender = rj->seen_reason = NULL;
}

/* What /sync showed of a room's own membership this turn, now that the batch is read. */
static void seen_apply(struct bridge *b, struct room_join *rj)
{
	if (rj->seen == MEMBERSHIP_LEAVE || rj->seen == MEMBERSHIP_BAN)
		room_lost(b, rj, rj->seen, rj->seen_sender, rj->seen_reason);
	bridge_room_seen_clear(rj);
}

void bridge_membership_check(struct bridge *b)
{
	if (!b->membership_seen)
		return;
	b->membership_seen = false;
	for (size_t j = 0; j < b->n_rooms; j++)
		seen_apply(b, b->rooms[j]);
}

void bridge_chatops_own_membership(const char *room_id, const char *membership, const char *sender,
				   const char *reason, void *data)
{
	struct bridge *b = data;
	struct room_join *rj = room_by_id(b, room_id);
	if (!rj)
		return;
	bridge_room_seen_clear(rj);
	rj->seen = membership_parse(membership);
	rj->seen_sender = sender ? xstrdup(sender) : NULL;
	rj->seen_reason = reason ? xstrdup(reason) : NULL;
	b->membership_seen = true;
}

/* An invite into a configured room (a route's, or an owners rule's forward_room): join it
 * by its configured name, never by the invite's id, which a room could use to pass for
 * another, and its waiting reports go out in order once joined. Invites to any other room
 * are left alone. */
void bridge_chatops_invited(const char *room_id, const cJSON *invite_state, void *data)
{
	struct bridge *b = data;
	bridge_membership_check(b); /* a removal read in the same batch comes first */
	for (size_t j = 0; j < b->n_rooms; j++) {
		struct room_join *rj = b->rooms[j];
		if (!membership_invite_is_for(rj->room, rj->room_id, room_id, invite_state))
			continue;
		if (rj->joined || rj->joining)
			return;
		log_kv(ZLOG_INFO, "invited into the room; joining", "room", rj->room, "room_id", room_id, NULL);
		rj->failed = false;
		rj->attempts = 0;
		join_room(b, rj);
		return;
	}
	log_kv(ZLOG_INFO, "invite ignored: not a room of the configuration", "room_id", room_id, NULL);
}

/* The room became encrypted while the bridge was in it (encryption is never turned off). */
void bridge_chatops_room_encrypted(const char *room_id, void *data)
{
	struct bridge *b = data;
	struct room_join *rj = room_by_id(b, room_id);
	if (!rj || rj->encrypted)
		return;
	rj->encrypted = true;
	if (rj->joined)
		apply_encryption(b, rj);
}
