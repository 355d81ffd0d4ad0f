/* bridge: the daemon's wiring. An MQTT message becomes, per matching route, an outbox
 * row committed before the message is acknowledged, then a Matrix send. */
#include "bridge.h"
#include "bridge_internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chatops.h"
#include "deliver.h"
#include "details.h"
#include "disposition.h"
#include "duration.h"
#include "clock.h"
#include "log.h"
#include "loop.h"
#include "matrix.h"
#include "membership.h"
#include "metrics.h"
#include "mqtt.h"
#include "notify.h"
#include "relations.h"
#include "report_facts.h"
#include "report.h"
#include "route.h"
#include "session.h"
#include "stats.h"
#include "store.h"
#include "store_actions.h"
#include "strbuf.h"
#include "zuul.h"

/* How long SIGTERM waits for requests in flight before giving up on them; they stay in
 * the outbox and are resent (same txnId) at the next start. */
#define SHUTDOWN_GRACE_MS 3000
/* A call to Zuul's admin API already started gets this long in all to be answered (the
 * answer is then said and audited); past it, it is recorded as interrupted. */
#define SHUTDOWN_ACTIONS_GRACE_MS 5000
/* Retention (dedup_retention): one slice of PRUNE_SLICE txn ids every PRUNE_INTERVAL_MS, so
 * the loop never stalls for a whole table scan (measured on a 700,000-row table: 15 ms per
 * slice, 40 ms at worst, against 250 ms for one scan of it all); a full pass over a
 * million ids takes under an hour. */
#define PRUNE_INTERVAL_MS (60 * 1000)
#define PRUNE_SLICE 20000
/* After a backlog, state.db is compacted (store_compact) once this much of it is free. */
#define COMPACT_MIN_FREE_BYTES (64LL * 1024 * 1024)
#define PREVIEW_CHARS 120
/* Commits are grouped: one fsync for many reports is what makes a burst affordable.
 * Reports read from MQTT are committed within ACK_DELAY_MS (or once ack_batch_max() of them
 * are waiting): their acknowledgements wait for that commit, their deliveries do not (a
 * resend after a crash reuses the txnId). Delivery bookkeeping alone (delivered, retried,
 * dead) waits up to BOOKKEEPING_DELAY_MS: losing it in a crash only means a resend. */
/* The broker sends no more unacknowledged messages than its in-flight window (MQTT 5:
 * mqtt.receive_maximum, default 100; 3.1.1: the broker's limit, mosquitto's default 20),
 * so waiting for more than that would only wait for the timer (see ack_batch_max). At low
 * rates the delay lets a few reports share one fsync; it stays well under window / rate
 * at high ones. */
#define ACK_DELAY_MS 10
#define BOOKKEEPING_DELAY_MS 100
/* Catching up after an absence: deliveries wait until the broker's backlog has come in
 * (no report for CATCHUP_QUIET_MS while connected), at most CATCHUP_MAX_MS. */
#define CATCHUP_QUIET_MS 2000
#define CATCHUP_MAX_MS 60000

char *bridge_txn_id(const char *event_key, const char *action, const char *route)
{
	/* Readable on purpose: an operator grepping logs or the homeserver's database finds
	 * the report by its key. Unsafe bytes can only come from a hostile action. */
	struct strbuf sb = STRBUF_INIT;
	const char *parts[] = {"zmb", route, action, event_key};
	for (size_t i = 0; i < 4; i++) {
		if (i)
			strbuf_putc(&sb, '.');
		size_t n = 0;
		for (const char *p = parts[i] ? parts[i] : ""; *p && n < 128; p++, n++) {
			char c = *p;
			int safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				   c == '-' || c == '_';
			strbuf_putc(&sb, safe ? c : '_');
		}
	}
	return strbuf_detach(&sb);
}

/* ---- templates ---------------------------------------------------------- */

static void templates_free(struct report_templates *t, size_t n)
{
	for (size_t i = 0; t && i < n; i++)
		report_templates_clear(&t[i]);
	free(t);
}

/* Loads every route's templates; NULL (errors logged) when any fails. */
static struct report_templates *templates_load(const struct config *cfg)
{
	struct report_templates *t = xcalloc(cfg->n_routes ? cfg->n_routes : 1, sizeof *t);
	for (size_t i = 0; i < cfg->n_routes; i++) {
		char err[512];
		if (report_templates_load(&t[i], cfg->routes[i].template_path, err, sizeof err) != 0) {
			log_kv(ZLOG_ERROR, "cannot load template", "route", cfg->routes[i].name, "error", err, NULL);
			templates_free(t, cfg->n_routes);
			return NULL;
		}
	}
	return t;
}

/* ---- service manager: readiness and status -------------------------------- */

void bridge_report_status(struct bridge *b)
{
	size_t joined = 0;
	for (size_t j = 0; j < b->n_rooms; j++)
		joined += b->rooms[j]->joined;
	notify_status("mqtt %s, rooms %zu/%zu joined, outbox %zu", mqtt_state_name(b->mqtt_state), joined,
		      b->n_rooms, deliverer_queued(b->deliverer));
}

/* READY=1 once MQTT is subscribed and every room is joined or refused for good (a
 * refused room must not keep the service "starting" until systemd kills it). */
void bridge_maybe_ready(struct bridge *b)
{
	bridge_report_status(b);
	if (b->ready_sent || b->mqtt_state != MQTT_CONNECTED || !b->user_id)
		return;
	for (size_t j = 0; j < b->n_rooms; j++)
		if (!b->rooms[j]->joined && !b->rooms[j]->failed && !b->rooms[j]->lost)
			return;
	b->ready_sent = true;
	notify_ready();
	log_kv(ZLOG_INFO, "ready: MQTT subscribed and every room settled", NULL);
}

static void watchdog_fired(struct loop *loop, void *data)
{
	struct bridge *b = data;
	notify_watchdog();
	bridge_report_status(b);
	b->watchdog_timer = loop_timer_add(loop, b->watchdog_ms, watchdog_fired, b);
}

/* ---- chatops: the room side ------------------------------------------------ */

static void on_delivered(const struct outbox_item *item, const char *event_id, void *data)
{
	struct bridge *b = data;
	chatops_delivered(b->chatops, item->txn_id, event_id);
}

static int chatops_post(const char *room, const char *kind, const char *key, const cJSON *content, void *data)
{
	/* Chatops messages are counted under the pseudo-route "chatops" in the metrics. */
	return bridge_queue_content(data, "chatops", room, key, kind, content) < 0 ? -1 : 0;
}

static void chatops_status(struct strbuf *out, void *data)
{
	struct bridge *b = data;
	char last[32] = "none yet";
	if (b->stats.last_report_ms) {
		time_t t = (time_t)(b->stats.last_report_ms / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(last, sizeof last, "%Y-%m-%d %H:%M:%S UTC", &tm);
	}
	char up[32];
	duration_format((double)(clock_real_ms() - b->stats.started_ms) / 1000.0, up, sizeof up);
	strbuf_printf(out, "MQTT %s, homeserver %s, outbox %zu, last report %s, up %s.",
		      mqtt_state_name(b->mqtt_state), b->stats.matrix_reachable ? "reachable" : "unreachable",
		      deliverer_queued(b->deliverer), last, up);
}

static void chatops_answer_dropped(void *data)
{
	struct bridge *b = data;
	b->stats.command_answers_dropped++;
}

static char *chatops_txn_of(const char *kind, const char *key, void *data)
{
	(void)data;
	return bridge_txn_id(key, kind, "chatops");
}

static char *chatops_kv_get(const char *key, void *data)
{
	struct bridge *b = data;
	return store_kv_get(b->store, key);
}

static void chatops_kv_set(const char *key, const char *value, void *data)
{
	struct bridge *b = data;
	store_kv_set(b->store, key, value);
}

static bool route_room(const struct config *cfg, const char *room)
{
	for (size_t i = 0; i < cfg->n_routes; i++)
		if (strcmp(cfg->routes[i].room, room) == 0)
			return true;
	return false;
}

/* Creates, updates or drops the chatops side to match the configuration and the joined
 * rooms. It exists from start-up (mutes apply to the first reports already); /sync starts
 * once rooms are joined, which is after whoami told the bridge its own user id. */
static void start_mqtt(struct bridge *b)
{
	b->mqtt_waits_for_history = false;
	if (bridge_intake_refuses(b)) { /* a full disk at start: deliver first, take reports later */
		bridge_intake_pause(b);
		return;
	}
	if (!b->mqtt)
		return; /* paused for a full disk: bridge_intake starts a new session once there is room */
	if (mqtt_session_start(b->mqtt) != 0)
		log_kv(ZLOG_WARN, "MQTT connection could not start; retrying", NULL);
}

/* With a new state_dir, a report decided before the rooms' history is read back would
 * open a second thread beside the one already in the room: reports wait at the broker
 * until then (the broker keeps them; nothing is acknowledged that was not decided). */
static void chatops_history_known(void *data)
{
	struct bridge *b = data;
	if (!b->mqtt_waits_for_history)
		return;
	log_kv(ZLOG_INFO, "rooms' history known; taking reports", NULL);
	start_mqtt(b);
}

/* Chatops records an action on Zuul before calling it, and calls it in the next turn: this
 * turn's batch must be committed at its end (on_turn_end handles every outcome of that). */
static void chatops_commit_soon(void *data)
{
	struct bridge *b = data;
	b->commit_due = true;
}

/* Every room joined, or refused (for good, or until an invite): nothing is pending. */
static bool all_rooms_settled(const struct bridge *b)
{
	for (size_t j = 0; j < b->n_rooms; j++)
		if (!b->rooms[j]->joined && !b->rooms[j]->failed && !b->rooms[j]->lost)
			return false;
	return true;
}

void bridge_chatops_update(struct bridge *b)
{
	if (!b->cfg->chatops.enabled) {
		chatops_free(b->chatops);
		b->chatops = NULL;
		if (b->mqtt_waits_for_history)
			start_mqtt(b);
		return;
	}
	if (!b->chatops) {
		struct chatops_host host = {.post = chatops_post,
					    .describe_status = chatops_status,
					    .kv_get = chatops_kv_get,
					    .kv_set = chatops_kv_set,
					    .txn_of = chatops_txn_of,
					    .history_known = chatops_history_known,
					    .own_membership = bridge_chatops_own_membership,
					    .invited = bridge_chatops_invited,
					    .room_encrypted = bridge_chatops_room_encrypted,
					    .stats = &b->stats,
					    .answer_dropped = chatops_answer_dropped,
					    .commit_soon = chatops_commit_soon,
					    .data = b};
		b->chatops = chatops_new(b->loop, b->conn, b->cfg, b->user_id, b->store, &host);
	}
	chatops_reload(b->chatops, b->cfg);
	if (b->user_id)
		chatops_set_user_id(b->chatops, b->user_id);
	struct chatops_room *rooms = xcalloc(b->n_rooms ? b->n_rooms : 1, sizeof *rooms);
	size_t n = 0;
	/* Commands, claims and notices belong to the routes' rooms; a room owners only
	 * forward to is posted into, not followed. A room the bot was removed from stays
	 * followed: /sync tells when it is invited back. */
	for (size_t j = 0; j < b->n_rooms; j++)
		if (b->rooms[j]->room_id && (b->rooms[j]->joined || b->rooms[j]->lost) &&
		    route_room(b->cfg, b->rooms[j]->room))
			rooms[n++] = (struct chatops_room){.room = b->rooms[j]->room, .room_id = b->rooms[j]->room_id};
	/* With no room joined yet, /sync still starts once every room is settled (refused
	 * rooms wait for an invite, which only /sync can show), and there is no history to
	 * read: reports waiting for it may come. */
	if (n || (b->user_id && all_rooms_settled(b)))
		chatops_set_rooms(b->chatops, rooms, n);
	free(rooms);
}

/* ---- catching up after an absence ------------------------------------------ */

static void catchup_release(struct bridge *b)
{
	if (!b->catching_up)
		return;
	b->catching_up = false;
	loop_timer_cancel(b->loop, b->catchup_quiet_timer);
	loop_timer_cancel(b->loop, b->catchup_deadline_timer);
	b->catchup_quiet_timer = b->catchup_deadline_timer = 0;
	deliverer_hold(b->deliverer, false);
	log_kv(ZLOG_INFO, "backlog read; deliveries resume", NULL);
}

static void catchup_quiet_fired(struct loop *loop, void *data);

static void catchup_arm_quiet(struct bridge *b)
{
	loop_timer_cancel(b->loop, b->catchup_quiet_timer);
	b->catchup_quiet_timer = loop_timer_add(b->loop, CATCHUP_QUIET_MS, catchup_quiet_fired, b);
}

static void catchup_quiet_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct bridge *b = data;
	b->catchup_quiet_timer = 0;
	if (b->mqtt_state == MQTT_CONNECTED)
		catchup_release(b); /* the backlog is in */
	else
		catchup_arm_quiet(b);
}

static void catchup_deadline_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct bridge *b = data;
	b->catchup_deadline_timer = 0;
	catchup_release(b);
}

/* The bridge was away: hold deliveries while the broker hands over what it kept, so a
 * failure that recovered meanwhile is summarised rather than posted. */
static void catchup_hold(struct bridge *b)
{
	if (b->catching_up || !chatops_away_since(b->chatops))
		return;
	b->catching_up = true;
	deliverer_hold(b->deliverer, true);
	catchup_arm_quiet(b);
	b->catchup_deadline_timer = loop_timer_add(b->loop, CATCHUP_MAX_MS, catchup_deadline_fired, b);
}

/* At the end of each turn: a homeserver gone for longer than catch_up_after starts an
 * absence; the absence ends once the homeserver answers again and no backlog is held. */
static void catchup_check(struct bridge *b)
{
	if (!b->chatops)
		return;
	int64_t now = clock_wall_ms();
	if (b->stats.matrix_reachable)
		b->matrix_down_since_ms = 0;
	else if (!b->matrix_down_since_ms)
		b->matrix_down_since_ms = now;
	long long gap_ms = b->cfg->chatops.catch_up_after_s * 1000;
	if (gap_ms > 0 && b->matrix_down_since_ms && now - b->matrix_down_since_ms > gap_ms)
		chatops_away_begin(b->chatops, b->matrix_down_since_ms);
	if (chatops_away_since(b->chatops) && !b->catching_up && b->stats.matrix_reachable && b->user_id)
		chatops_away_end(b->chatops);
}

static bool skip_delivery(const struct outbox_item *item, void *data)
{
	struct bridge *b = data;
	return chatops_skip(b->chatops, item);
}

/* ---- MQTT in ----------------------------------------------------------- */

int bridge_queue_content(struct bridge *b, const char *route, const char *room, const char *key, const char *action,
			 const cJSON *content)
{
	char *txn = bridge_txn_id(key, action, route);
	char *json = cJSON_PrintUnformatted(content);
	int64_t now = clock_real_ms(), id = 0;
	int rc = store_outbox_push(b->store, route, room, txn, key, action, json, now, &id);
	if (rc == 1) {
		stats_route(&b->stats, route)->routed++;
		log_kv(ZLOG_DEBUG, "report queued", "route", route, "key", key, "action", action, "txn", txn, NULL);
		struct outbox_item item = {
			.id = id,
			.route = xstrdup(route),
			.room = xstrdup(room),
			.txn_id = txn,
			.event_key = xstrdup(key),
			.action = xstrdup(action),
			.content_json = json,
			.created_ms = now,
		};
		deliverer_enqueue(b->deliverer, &item);
		return 1;
	}
	if (rc == 0) {
		stats_route(&b->stats, route)->deduplicated++;
		log_kv(ZLOG_INFO, "duplicate report ignored", "route", route, "key", key, "action", action, NULL);
	} else if (store_full_reason(b->store)) {
		b->intake_refused = true; /* not acknowledged; redelivered once there is room */
	} else {
		b->store_broken = true;
	}
	free(txn);
	cJSON_free(json);
	return rc;
}

/* A repeat went into the open failure's thread: its start report, already in the room,
 * becomes one line pointing there instead of a second full report. */
static void edit_start_into_pointer(struct bridge *b, const struct route *r, const struct zuul_event *ev,
				    const char *key, const char *start_txn)
{
	struct strbuf text = STRBUF_INIT;
	strbuf_printf(&text, "%s %s failed again: followed in the thread of its open failure.",
		      ev->item.project ? ev->item.project : "(no project)", ev->pipeline ? ev->pipeline : "");
	cJSON *note = cJSON_CreateObject();
	cJSON_AddStringToObject(note, "msgtype", "m.notice");
	cJSON_AddStringToObject(note, "body", strbuf_str(&text));
	cJSON_AddItemToObject(note, "m.mentions", cJSON_CreateObject()); /* the thread's repeat pings nobody */
	cJSON *edit = relations_edit_new(note, NULL, NULL);
	relations_point_at_txn(edit, start_txn);
	bridge_queue_content(b, r->name, r->room, key, "start-edit", edit);
	cJSON_Delete(edit);
	cJSON_Delete(note);
	strbuf_free(&text);
}

/* Room a message keeps under the size cap for what its edits put on top: the claim lines
 * (recovered, resolved and claimed by, the count) and an edit's relation and fallback. */
#define EDIT_ROOM_BYTES 3072

void bridge_report_context(struct bridge *b, const struct route *r, const struct zuul_event *ev,
			   struct chatops_owners *owners, struct report_context *ctx)
{
	chatops_find_owners(b->cfg, ev, owners);
	*ctx = (struct report_context){.route_name = r->name, .details_of = bridge_details_of, .details_data = b};
	chatops_what_to_do(b->cfg, r, owners, &ctx->runbook, &ctx->hint);
}

cJSON *bridge_compose(struct bridge *b, const struct route *r, size_t i, const struct zuul_event *ev,
		      const char *key, struct report_context *ctx, const struct chatops_owners *owners,
		      const char *claim_txn, bool repeat)
{
	const struct config_route_chatops *rco = config_route_chatops(b->cfg, r);
	for (int pass = 0;; pass++) {
		cJSON *content = report_content_new(&b->templates[i], ev, ctx);
		size_t rendered = relations_content_bytes(content);
		if (!repeat) {
			if (rco->mention_oncall)
				chatops_mention(b->chatops, ev, owners, content);
			chatops_mark_failure(b->chatops, ev, claim_txn, r->name, key, owners, content);
		}
		size_t whole = relations_content_bytes(content);
		size_t reserve = whole - rendered + EDIT_ROOM_BYTES;
		if (whole + EDIT_ROOM_BYTES <= REPORT_MAX_CONTENT_BYTES || ctx->reserve_bytes >= reserve || pass == 2)
			return content;
		cJSON_Delete(content);
		ctx->reserve_bytes = reserve;
	}
}

/* Posts the report as d says: a new message, a reply in an open failure's thread, or an
 * edit of its start report. */
static void post_report(struct bridge *b, const struct route *r, size_t i, const struct zuul_event *ev,
			const char *key, const struct disposition_facts *facts, const struct disposition *d)
{
	/* Whoever owns the failure brings their own runbook and hint, else the route's apply. */
	struct chatops_owners owners;
	struct report_context ctx;
	bridge_report_context(b, r, ev, &owners, &ctx);
	char *txn = bridge_txn_id(key, ev->action, r->name);
	const char *start_txn = facts->start_txn;
	/* The message the room will react to: the start report when it is edited in place. */
	const char *claim_txn = d->kind == DISPOSITION_EDIT ? start_txn : txn;
	bool repeat = d->kind == DISPOSITION_THREAD_REPLY;
	/* A repeat goes into its thread without pinging anyone again. */
	cJSON *content = bridge_compose(b, r, i, ev, key, &ctx, &owners, claim_txn, repeat);
	cJSON *edit = NULL;
	if (repeat) {
		relations_make_thread_reply(content, NULL, NULL);
		relations_point_at_txn(content, facts->repeat.txn);
	} else if (d->kind == DISPOSITION_EDIT) {
		/* The edit's own m.mentions pings whoever the result mentions. */
		edit = relations_edit_new(content, NULL, NULL);
		relations_point_at_txn(edit, start_txn);
	}
	if (bridge_queue_content(b, r->name, r->room, key, ev->action, edit ? edit : content) == 1) {
		b->stats.last_report_ms = clock_real_ms();
		chatops_actions_report_posted(b->chatops, r->room, repeat ? txn : claim_txn);
		if (repeat) {
			chatops_repeat_queued(b->chatops, facts->repeat.txn, txn);
			if (d->start_becomes_pointer)
				edit_start_into_pointer(b, r, ev, key, start_txn);
		} else {
			chatops_report_queued(b->chatops, ev, claim_txn, r->room, r->name, key, content);
		}
		/* Why it failed follows as an edit of this message, once fetched: never holds it back. */
		struct details_posted posted = {.room = r->room, .route = r->name, .key = key,
						.txn = repeat ? txn : claim_txn, .repeat = repeat,
						.payload = b->payload, .payload_len = b->payload_len};
		details_report_posted(b->details, ev, &posted);
	}
	cJSON_Delete(edit);
	free(txn);
	cJSON_Delete(content);
}

/* One route's part of a report: what is known (the route's verdict, the room state),
 * what that makes of the report (disposition_decide, the one place that decides), and
 * doing it. Returns whether the report counted as routed. */
static bool route_one(struct bridge *b, const struct route *r, size_t i, const struct zuul_event *ev,
		      const char *key, const struct incident_outcome *incidents)
{
	struct report_facts rf;
	report_facts_gather(b->chatops, b->store, b->cfg, r, ev, key, incidents, &rf);
	struct disposition d;
	disposition_decide(ev, &rf.facts, &d);

	if (d.closes_streaks)
		chatops_close_streaks(b->chatops, r->name, ev);
	switch (d.kind) {
	case DISPOSITION_NOT_ROUTED:
		break;
	case DISPOSITION_RECOVERY:
	case DISPOSITION_CATCHUP:
		break; /* closing the streaks told it */
	case DISPOSITION_MUTED:
		chatops_mute_count(b->chatops, r->room, ev);
		break;
	case DISPOSITION_INCIDENT:
	case DISPOSITION_NEW_MESSAGE:
	case DISPOSITION_THREAD_REPLY:
	case DISPOSITION_EDIT:
		/* An incident this report opened or grew is shown in every room it reaches. */
		chatops_incidents_post(b->chatops, r, config_route_chatops(b->cfg, r)->mention_oncall, incidents);
		if (d.kind != DISPOSITION_INCIDENT)
			post_report(b, r, i, ev, key, &rf.facts, &d);
		break;
	}
	if (d.kind != DISPOSITION_NOT_ROUTED)
		log_kv(d.kind == DISPOSITION_NEW_MESSAGE ? ZLOG_DEBUG : ZLOG_INFO, disposition_log_message(d.kind), "route", r->name,
		       "key", key, "action", ev->action, "project", ev->item.project, "decision",
		       disposition_kind_name(d.kind), "why", strbuf_str(&d.why), NULL);
	bool routed = disposition_routed(d.kind);
	disposition_clear(&d);
	report_facts_clear(&rf);
	return routed;
}

/* A decoded report's way into the rooms: triage first (an infrastructure failure may be
 * absorbed into an incident: one message per incident, not one alert per project), then
 * each route decides and acts. */
static void route_report(struct bridge *b, const struct zuul_event *ev, const char *key)
{
	details_observe(b->details, ev); /* every result counts for flakiness, routed or not */
	struct incident_outcome incidents;
	chatops_triage(b->chatops, ev, key, &incidents);
	size_t routed = 0;
	for (size_t i = 0; i < b->cfg->n_routes; i++)
		routed += route_one(b, &b->cfg->routes[i], i, ev, key, &incidents);
	incident_outcome_free(&incidents);
	chatops_actions_report_done(b->chatops, ev);
	if (!routed) {
		b->stats.filtered++;
		log_kv(ZLOG_DEBUG, "report matches no route", "key", key, "action", ev->action, "pipeline",
		       ev->pipeline, "project", ev->item.project, NULL);
	}
}

static void on_mqtt_message(const struct mqtt_message *msg, void *data)
{
	struct bridge *b = data;
	b->stats.received++;
	b->unacked++;
	if (b->catching_up)
		catchup_arm_quiet(b);
	if (b->store_broken || bridge_intake_refuses(b))
		return;
	char err[256];
	struct zuul_event *ev = zuul_event_parse(msg->payload, msg->len, err, sizeof err);
	if (!ev) {
		b->stats.rejected++;
		char *preview = zuul_payload_preview(msg->payload, msg->len, PREVIEW_CHARS);
		log_kv(ZLOG_WARN, "payload is not a Zuul report; ignored", "topic", msg->topic, "reason", err, "preview",
		       preview, NULL);
		free(preview);
		return;
	}
	char *key = zuul_event_key(ev, msg->payload, msg->len);
	b->payload = (const char *)msg->payload;
	b->payload_len = msg->len;
	route_report(b, ev, key);
	b->payload = NULL;
	b->payload_len = 0;
	free(key);
	zuul_event_free(ev);
}

static void on_mqtt_state(enum mqtt_state state, const char *reason, void *data);

struct mqtt_session *bridge_mqtt_new(struct bridge *b)
{
	return mqtt_session_new(b->loop, &b->conn->mqtt, on_mqtt_message, on_mqtt_state, b);
}

void bridge_mqtt_state(struct bridge *b, enum mqtt_state state, const char *reason)
{
	on_mqtt_state(state, reason, b);
}

static void on_mqtt_state(enum mqtt_state state, const char *reason, void *data)
{
	struct bridge *b = data;
	int64_t now = clock_wall_ms();
	if (state == MQTT_CONNECTED) {
		long long gap_ms = b->cfg->chatops.catch_up_after_s * 1000;
		if (b->chatops && gap_ms > 0 && b->mqtt_down_since_ms && now - b->mqtt_down_since_ms > gap_ms)
			chatops_away_begin(b->chatops, b->mqtt_down_since_ms);
		b->mqtt_down_since_ms = 0;
		catchup_hold(b);
		if (b->catching_up)
			catchup_arm_quiet(b);
	} else if (b->mqtt_state == MQTT_CONNECTED && !b->mqtt_down_since_ms) {
		b->mqtt_down_since_ms = now;
	}
	b->mqtt_state = state;
	b->stats.mqtt_connected = state == MQTT_CONNECTED;
	log_kv(ZLOG_DEBUG, "MQTT state", "state", mqtt_state_name(state), "reason", reason, NULL);
	bridge_maybe_ready(b);
}

/* ---- the turn: commit, then acknowledge ------------------------------------ */

static void commit_timer_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct bridge *b = data;
	b->commit_timer = 0;
	b->commit_due = true; /* the turn-end hook of this very turn commits */
}

/* MQTT 5: commit once half the window we announced is waiting, so the broker can go on
 * sending the other half while the commit runs. 3.1.1: the broker's window is its own
 * setting; at mosquitto's default of 20 a commit every 20 measured faster in the burst
 * bench (3,400-3,900/s) than one every 10 (3,200-3,400/s): fewer commits outweigh the
 * short stall. */
static unsigned ack_batch_max(const struct bridge *b)
{
	if (!mqtt_session_window_announced(b->mqtt))
		return mqtt_session_window(b->mqtt);
	unsigned half = mqtt_session_window(b->mqtt) / 2;
	return half ? half : 1;
}

static void on_turn_end(struct loop *loop, void *data)
{
	struct bridge *b = data;
	bridge_intake_turn_end(b); /* a full disk: MQTT goes before it acknowledges anything */
	if (b->store_broken) {
		if (!b->exit_status) {
			log_kv(ZLOG_ERROR, "cannot write the outbox; stopping without acknowledging (the broker "
					   "redelivers)", "state_dir", b->conn->state_dir, NULL);
			b->exit_status = 1;
			loop_stop(loop);
		}
		return;
	}
	bool in_batch = store_in_batch(b->store);
	/* A batch SQLite rolled back in mid-turn is taken in at once, before more is sent from it. */
	bool now = b->stopping || b->commit_due || b->unacked >= ack_batch_max(b) || (b->unacked && !in_batch) ||
		   store_batch_lost(b->store);
	if (now) {
		loop_timer_cancel(loop, b->commit_timer);
		b->commit_timer = 0;
		b->commit_due = false;
		int committed = in_batch ? store_commit(b->store) : STORE_COMMIT_OK;
		if (committed == STORE_COMMIT_LOST_TO_FULL) {
			/* Out of space in mid-batch: rolled back, nothing of it acknowledged. */
			bridge_intake_batch_lost(b);
		} else if (committed != STORE_COMMIT_OK) {
			b->store_broken = true;
			b->exit_status = 1;
			log_kv(ZLOG_ERROR, "cannot commit the outbox; stopping without acknowledging (the broker redelivers)",
			       "state_dir", b->conn->state_dir, NULL);
			loop_stop(loop);
			return;
		}
		b->unacked = 0;
	} else if (in_batch || b->unacked) {
		/* Arm (or shorten) the deadline: acks may wait ACK_DELAY_MS, bookkeeping longer. */
		bool for_acks = b->unacked > 0;
		if (b->commit_timer && for_acks && !b->commit_timer_for_acks) {
			loop_timer_cancel(loop, b->commit_timer);
			b->commit_timer = 0;
		}
		if (!b->commit_timer) {
			b->commit_timer = loop_timer_add(loop, for_acks ? ACK_DELAY_MS : BOOKKEEPING_DELAY_MS,
							 commit_timer_fired, b);
			b->commit_timer_for_acks = for_acks;
		}
	}
	bridge_membership_check(b);
	catchup_check(b);
	b->stats.outbox_depth = deliverer_queued(b->deliverer);
	/* Acknowledgements go out only when everything their messages wrote is committed. */
	if (b->mqtt && b->unacked == 0)
		mqtt_session_flush(b->mqtt);
	if (b->stopping) {
		if (b->mqtt) {
			/* Everything read so far is committed and acknowledged: leave now. */
			mqtt_session_free(b->mqtt);
			b->mqtt = NULL;
		}
		if (deliverer_in_flight(b->deliverer) == 0 && chatops_actions_pending(b->chatops) == 0)
			loop_stop(loop);
	}
}

/* ---- signals ----------------------------------------------------------- */

static void shutdown_actions_timer_fired(struct loop *loop, void *data)
{
	struct bridge *b = data;
	b->shutdown_timer = 0;
	log_kv(ZLOG_WARN, "shutdown grace period for zuul actions over; unanswered ones are recorded as interrupted",
	       NULL);
	loop_stop(loop);
}

static void shutdown_timer_fired(struct loop *loop, void *data)
{
	struct bridge *b = data;
	b->shutdown_timer = 0;
	if (deliverer_in_flight(b->deliverer))
		log_kv(ZLOG_WARN, "shutdown grace period over; unfinished sends stay in the outbox", NULL);
	if (chatops_actions_pending(b->chatops)) {
		b->shutdown_timer = loop_timer_add(loop, SHUTDOWN_ACTIONS_GRACE_MS - SHUTDOWN_GRACE_MS,
						   shutdown_actions_timer_fired, b);
		return;
	}
	loop_stop(loop);
}

static void on_stop_signal(struct loop *loop, int signo, void *data)
{
	struct bridge *b = data;
	if (b->stopping)
		return;
	b->stopping = true;
	notify_stopping();
	char sig[16];
	snprintf(sig, sizeof sig, "%d", signo);
	log_kv(ZLOG_INFO, "stopping: finishing requests in flight", "signal", sig, NULL);
	deliverer_pause(b->deliverer);
	b->shutdown_timer = loop_timer_add(loop, SHUTDOWN_GRACE_MS, shutdown_timer_fired, b);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Whether the connection settings differ (those need new sessions: not done live). */
static bool connections_differ(const struct config *a, const struct config *b)
{
	return !same_str(a->mqtt.host, b->mqtt.host) || a->mqtt.port != b->mqtt.port ||
	       !same_str(a->mqtt.client_id, b->mqtt.client_id) || !same_str(a->mqtt.username, b->mqtt.username) ||
	       !same_str(a->matrix.homeserver, b->matrix.homeserver) ||
	       !same_str(a->matrix.access_token, b->matrix.access_token) || !same_str(a->matrix.user, b->matrix.user) ||
	       !same_str(a->matrix.password, b->matrix.password) || !same_str(a->state_dir, b->state_dir);
}

/* Hands outbox rows the deliverer does not hold yet to it: at start the backlog of the
 * last run, after a reload dead letters put back from the CLI. */
static void outbox_adopt(struct bridge *b)
{
	/* Each room's window is filled from the store; the rest waits there (bounded memory
	 * whatever the backlog). */
	size_t adopted = deliverer_adopt_outbox(b->deliverer);
	if (adopted) {
		char count[24];
		snprintf(count, sizeof count, "%zu", adopted);
		log_kv(ZLOG_INFO, "outbox items queued for delivery", "count", count, NULL);
	}
}

static void reload(struct bridge *b);
static void register_routes(struct bridge *b);

static void on_reload_signal(struct loop *loop, int signo, void *data)
{
	(void)loop;
	(void)signo;
	struct bridge *b = data;
	if (b->ready_sent)
		notify_reloading();
	reload(b);
	/* systemd 252 leaves the unit "reloading" until it hears READY=1 again. */
	if (b->ready_sent)
		notify_ready();
	bridge_report_status(b);
}

static void reload(struct bridge *b)
{
	log_kv(ZLOG_INFO, "reloading configuration", "config", b->conn->path, NULL);
	struct strbuf errors = STRBUF_INIT;
	struct config *fresh = config_load(b->conn->path, CONFIG_NEED_SECRETS, &errors);
	if (!fresh) {
		/* Each problem on its own line, then keep running on the old configuration. */
		char *lines = strbuf_detach(&errors);
		for (char *line = strtok(lines, "\n"); line; line = strtok(NULL, "\n"))
			log_kv(ZLOG_ERROR, "configuration error", "error", line, NULL);
		free(lines);
		log_kv(ZLOG_ERROR, "reload failed; keeping the previous configuration", NULL);
		notify_status("reload failed; running the previous configuration");
		return;
	}
	strbuf_free(&errors);
	/* Clients are made from the running settings (b->conn); should one ever be made from
	 * the fresh ones, it must still read the session's token. */
	fresh->matrix.auth = session_auth(b->session);
	struct report_templates *templates = templates_load(fresh);
	if (!templates) {
		config_free(fresh);
		log_kv(ZLOG_ERROR, "reload failed; keeping the previous configuration and templates", NULL);
		notify_status("reload failed; running the previous configuration");
		return;
	}
	if (connections_differ(b->conn, fresh))
		log_kv(ZLOG_WARN, "MQTT, Matrix or state_dir settings changed; they take effect at the next restart",
		       NULL);
	templates_free(b->templates, b->cfg->n_routes);
	if (b->cfg != b->conn)
		config_free(b->cfg);
	b->cfg = fresh;
	b->templates = templates;
	details_reload(b->details, fresh);
	register_routes(b);
	if (!b->verbose)
		log_set_level((enum log_level)fresh->log_level);
	/* Rooms that failed get another chance; new routes' rooms are joined. */
	bridge_rooms_sync(b);
	bridge_chatops_update(b);
	outbox_adopt(b);
	char n[24];
	snprintf(n, sizeof n, "%zu", fresh->n_routes);
	log_kv(ZLOG_INFO, "configuration reloaded", "routes", n, NULL);
}

/* ---- housekeeping ------------------------------------------------------- */

/* Every configured route shows in the metrics from the start, at 0. */
static void register_routes(struct bridge *b)
{
	for (size_t i = 0; i < b->cfg->n_routes; i++)
		stats_route(&b->stats, b->cfg->routes[i].name);
}

/* zmb_state_db_bytes: at start and after each retention step. */
static void measure_state_db(struct bridge *b)
{
	int64_t size = store_size_bytes(b->store);
	b->stats.state_db_bytes = size > 0 ? (uint64_t)size : 0;
}

static void prune_timer_fired(struct loop *loop, void *data)
{
	struct bridge *b = data;
	int64_t keep_ms = (int64_t)b->cfg->dedup_retention_s * 1000;
	bool pass_done = false;
	/* txns are stamped with the real clock, failures with the wall clock (a test clock
	 * in tests): each is compared with its own. */
	int txns = store_prune_txns(b->store, clock_real_ms() - keep_ms, PRUNE_SLICE, &pass_done);
	int failures = pass_done ? store_prune_failures(b->store, clock_wall_ms() - keep_ms) : 0;
	/* Actions on Zuul: an event is replayed from the last stored /sync position, seconds
	 * back, so their records need not outlive the reports'. */
	if (pass_done)
		store_actions_prune(b->store, clock_wall_ms() - keep_ms);
	if (txns > 0 || failures > 0) {
		char t[24], f[24];
		snprintf(t, sizeof t, "%d", txns);
		snprintf(f, sizeof f, "%d", failures);
		log_kv(ZLOG_DEBUG, "retention: old reports forgotten", "txns", t, "failures", f, NULL);
	}
	/* A drained backlog leaves the file at its largest: give the space back (store_compact
	 * waits for an empty outbox, since the VACUUM pauses the loop for a moment). */
	int64_t before = 0, after = 0, t0 = clock_real_ms();
	if (store_compact(b->store, COMPACT_MIN_FREE_BYTES, &before, &after) == 1) {
		char was[32], now[32], took[32];
		snprintf(was, sizeof was, "%.1f MiB", (double)before / (1024.0 * 1024.0));
		snprintf(now, sizeof now, "%.1f MiB", (double)after / (1024.0 * 1024.0));
		snprintf(took, sizeof took, "%lld ms", (long long)(clock_real_ms() - t0));
		log_kv(ZLOG_INFO, "state.db compacted after a backlog", "before", was, "after", now, "took", took,
		       NULL);
	}
	measure_state_db(b);
	b->prune_timer = loop_timer_add(loop, PRUNE_INTERVAL_MS, prune_timer_fired, b);
}

/* ---- life cycle ---------------------------------------------------------- */

struct bridge *bridge_new(struct config *cfg, bool verbose, bool *state_damaged)
{
	if (state_damaged)
		*state_damaged = false;
	struct bridge *b = xcalloc(1, sizeof *b);
	b->conn = b->cfg = cfg;
	b->verbose = verbose;
	if (!verbose)
		log_set_level((enum log_level)cfg->log_level);
	b->templates = templates_load(cfg);
	if (!b->templates) {
		bridge_free(b);
		return NULL;
	}
	char err[512];
	enum store_open_failure why;
	b->store = store_open_checked(cfg->state_dir, &why, err, sizeof err);
	if (!b->store) {
		if (why == STORE_OPEN_DAMAGED) {
			struct strbuf fix = STRBUF_INIT;
			strbuf_printf(&fix, "zuul-matrix-bridge reset-state -c %s", cfg->path);
			log_kv(ZLOG_ERROR, "the state database is damaged; refusing to start (nothing in it was changed)",
			       "error", err, "start_fresh_with", strbuf_str(&fix), NULL);
			strbuf_free(&fix);
			if (state_damaged)
				*state_damaged = true;
		} else {
			log_kv(ZLOG_ERROR, "cannot open the state store", "error", err, NULL);
		}
		bridge_free(b);
		return NULL;
	}
	b->loop = loop_new();
	/* Before any client: each reads its token from the session, request by request. */
	b->session = session_new(b->loop, &cfg->matrix, b->store);
	cfg->matrix.auth = session_auth(b->session);
	b->matrix = matrix_client_new(b->loop, &cfg->matrix);
	b->deliverer = deliverer_new(b->loop, b->store, b->matrix, &cfg->matrix, &b->stats);
	deliverer_on_done(b->deliverer, on_delivered, b);
	deliverer_on_skip(b->deliverer, skip_delivery, b);
	deliverer_on_not_joined(b->deliverer, bridge_on_send_not_joined, b);
	b->details = details_new(b->loop, b->store, cfg, &b->stats.details, bridge_details_edit, b);
	b->stats.started_ms = clock_real_ms();
	register_routes(b);
	if (cfg->metrics.enabled) {
		b->metrics = metrics_server_new(b->loop, cfg->metrics.listen, cfg->metrics.port, &b->stats, err,
						sizeof err);
		if (!b->metrics) {
			log_kv(ZLOG_ERROR, "cannot start the metrics listener", "error", err, NULL);
			bridge_free(b);
			return NULL;
		}
		char port[16];
		snprintf(port, sizeof port, "%d", metrics_server_port(b->metrics));
		log_kv(ZLOG_INFO, "metrics and health listening", "address", cfg->metrics.listen, "port", port, NULL);
	}
	b->mqtt = bridge_mqtt_new(b);
	if (!b->session || !b->matrix || !b->mqtt) {
		log_kv(ZLOG_ERROR, "cannot create the MQTT or Matrix client", NULL);
		bridge_free(b);
		return NULL;
	}
	loop_on_turn_end(b->loop, on_turn_end, b);
	loop_signal(b->loop, SIGTERM, on_stop_signal, b);
	loop_signal(b->loop, SIGINT, on_stop_signal, b);
	loop_signal(b->loop, SIGHUP, on_reload_signal, b);
	signal(SIGPIPE, SIG_IGN);
	return b;
}

int bridge_run(struct bridge *b)
{
	outbox_adopt(b); /* deliveries pending from the last run resume first */
	char routes[24];
	snprintf(routes, sizeof routes, "%zu", b->cfg->n_routes);
	log_kv(ZLOG_INFO, "zuul-matrix-bridge starting", "config", b->conn->path, "routes", routes, "state_dir",
	       b->conn->state_dir, NULL);
	bridge_rooms_sync(b);
	bridge_chatops_update(b);
	catchup_hold(b); /* back after an absence: read the backlog before posting */
	session_start(b->session); /* with a password: whoami and joins wait for the login */
	bridge_start_whoami(b);
	if (chatops_awaits_history(b->chatops)) {
		b->mqtt_waits_for_history = true;
		log_kv(ZLOG_INFO, "new state: reading the rooms' history before taking reports", NULL);
	} else {
		start_mqtt(b);
	}
	b->prune_timer = loop_timer_add(b->loop, 1000, prune_timer_fired, b);
	measure_state_db(b);
	b->watchdog_ms = notify_watchdog_interval_ms();
	if (b->watchdog_ms)
		b->watchdog_timer = loop_timer_add(b->loop, b->watchdog_ms, watchdog_fired, b);
	if (loop_run(b->loop) != 0)
		b->exit_status = 1;
	chatops_actions_interrupt(b->chatops); /* Zuul calls left unanswered: recorded before the commit */
	/* Whatever the turn hook has not committed yet is committed now; a broken store
	 * is left alone so nothing unacknowledged is claimed durable. */
	if (!b->store_broken && store_in_batch(b->store))
		store_commit(b->store);
	char queued[24];
	snprintf(queued, sizeof queued, "%zu", store_outbox_depth(b->store));
	log_kv(ZLOG_INFO, "stopped", "outbox", queued, NULL);
	return b->exit_status;
}

void bridge_free(struct bridge *b)
{
	if (!b)
		return;
	/* MQTT first (its DISCONNECT must not carry acks for uncommitted work: the store was
	 * committed by bridge_run), then Matrix, which drops requests still in flight. */
	if (b->mqtt && !b->store_broken)
		mqtt_session_free(b->mqtt);
	if (b->loop) {
		loop_timer_cancel(b->loop, b->catchup_quiet_timer);
		loop_timer_cancel(b->loop, b->catchup_deadline_timer);
	}
	chatops_free(b->chatops);
	details_free(b->details);
	deliverer_free(b->deliverer);
	matrix_client_free(b->matrix);
	session_free(b->session); /* after every client that reads from it */
	metrics_server_free(b->metrics);
	for (size_t j = 0; j < b->n_rooms; j++) {
		bridge_room_seen_clear(b->rooms[j]);
		loop_timer_cancel(b->loop, b->rooms[j]->timer);
		free(b->rooms[j]->room);
		free(b->rooms[j]->room_id);
		free(b->rooms[j]);
	}
	free(b->rooms);
	templates_free(b->templates, b->cfg ? b->cfg->n_routes : 0);
	store_close(b->store);
	loop_free(b->loop);
	stats_clear(&b->stats);
	free(b->user_id);
	if (b->cfg != b->conn)
		config_free(b->cfg);
	config_free(b->conn);
	free(b);
}
