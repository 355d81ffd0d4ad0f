/* bridge_internal: the bridge's state, shared by bridge.c (reports in, the turn, reload,
 * life cycle) and bridge_rooms.c (whoami, joining the rooms, the bot's own membership). */
#ifndef ZMB_BRIDGE_INTERNAL_H
#define ZMB_BRIDGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "chatops.h"
#include "config.h"
#include "deliver.h"
#include "loop.h"
#include "matrix.h"
#include "membership.h"
#include "metrics.h"
#include "mqtt.h"
#include "session.h"
#include "stats.h"
#include "store.h"

struct report_templates;
struct report_context;
struct details;
struct details_posted;
struct build_details;
struct chatops_owners;
struct route;
struct zuul_event;

/* A configured room and where joining it stands. It is also the context of its join
 * requests and retry timers, so nothing is allocated per attempt. */
struct room_join {
	struct bridge *b;
	char *room;
	char *room_id; /* resolved by the join */
	int attempts;
	uint64_t timer;
	bool joining; /* a join request is out */
	bool joined;
	bool failed;  /* refused for good; counts as settled for readiness */
	/* The bot is not in the room (kicked, banned, or its join was refused): its reports
	 * wait in the outbox until an invite lets it join again. Settled for readiness. */
	bool lost;
	/* The newest own m.room.member event /sync showed in this turn, applied at its end
	 * (MEMBERSHIP_UNKNOWN: none). The newest wins: a room joined again replays its kick,
	 * invite and join in the timeline, and only the join is news. */
	enum membership seen;
	/* The room has m.room.encryption: the bridge cannot encrypt, so it posts there only
	 * where matrix.post_unencrypted allows it. Known before the room is used. */
	bool encrypted;
	bool encrypted_logged; /* said once at error level; repeats go to debug */
	char *seen_sender;
	char *seen_reason;
};

struct bridge {
	struct loop *loop;
	/* `conn` holds the mqtt/matrix settings the sessions were built from; `cfg` holds
	 * the routes in force. They differ after a reload and both stay alive. */
	struct config *conn;
	struct config *cfg;
	struct report_templates *templates; /* one per cfg->routes[i] */
	bool verbose;
	struct store *store;
	struct session *session; /* the token every Matrix client reads (cfg->matrix.auth) */
	struct matrix_client *matrix;
	struct deliverer *deliverer;
	struct mqtt_session *mqtt;
	char *user_id;
	int whoami_attempts;
	uint64_t whoami_timer;
	struct room_join **rooms; /* pointers: entries must not move while requests are out */
	size_t n_rooms;
	uint64_t prune_timer;
	uint64_t shutdown_timer;
	uint64_t commit_timer;
	bool commit_timer_for_acks; /* the pending timer is the short one */
	bool commit_due;            /* the commit timer fired */
	unsigned unacked;           /* MQTT messages read since the last commit + flush */
	bool stopping;
	bool store_broken;
	bool ready_sent;          /* systemd was told READY=1 */
	enum mqtt_state mqtt_state;
	uint64_t watchdog_timer;
	uint64_t watchdog_ms;
	int exit_status;
	struct stats stats;
	struct metrics_server *metrics;
	struct chatops *chatops; /* NULL unless the chatops group is configured */
	struct details *details; /* build details and flakiness (details.h); never NULL once made */
	/* The MQTT payload being routed (in on_mqtt_message only, else NULL): a posted report
	 * keeps a copy with the details module, to be rendered again with its details. */
	const char *payload;
	size_t payload_len;
	bool mqtt_waits_for_history; /* MQTT starts once chatops read the rooms' history */
	bool membership_seen; /* some room's `seen` waits for the turn's end */
	/* Absences (wall ms, 0: none): since when the broker and the homeserver are gone. */
	int64_t mqtt_down_since_ms;
	int64_t matrix_down_since_ms;
	bool catching_up;          /* deliveries held while a backlog comes in */
	uint64_t catchup_quiet_timer;
	uint64_t catchup_deadline_timer;
	/* bridge_intake.c: reports refused while the state database is full. */
	bool intake_refused;  /* a message was refused this turn: close MQTT before any ack */
	uint64_t space_timer; /* looks at the disk again while it is full */
};

/* ---- bridge.c ---- */
/* systemd's STATUS line, and READY=1 once MQTT is up and every room is settled. */
void bridge_report_status(struct bridge *b);
void bridge_maybe_ready(struct bridge *b);
/* Hands chatops the joined route rooms (creating or dropping it as configured). */
void bridge_chatops_update(struct bridge *b);
/* A new (unstarted) MQTT session delivering to the bridge's handlers. */
struct mqtt_session *bridge_mqtt_new(struct bridge *b);
/* Tells the bridge the MQTT state changed, as the session's own callback does. */
void bridge_mqtt_state(struct bridge *b, enum mqtt_state state, const char *reason);

/* Puts content into the outbox (unless (key, action, route) was accepted before) and hands
 * it to the deliverer. Returns 1 queued, 0 duplicate, -1 store failure (the turn-end hook
 * then stops the bridge without acknowledging). Takes ownership of nothing. */
int bridge_queue_content(struct bridge *b, const char *route, const char *room, const char *key, const char *action,
			 const cJSON *content);
/* What a report of ev on route r is rendered with: its owners (chatops_find_owners), their or
 * the route's runbook and hint, and the build details known so far. */
void bridge_report_context(struct bridge *b, const struct route *r, const struct zuul_event *ev,
			   struct chatops_owners *owners, struct report_context *ctx);
/* The report as it is posted: rendered with route i's templates, then, unless it repeats an
 * open failure, with its mentions and failure marker (claim_txn: the message the room will
 * react to). Those and the later claim edits come on top of what the rendering measured, so
 * when the whole would leave them no room under the cap, it is rendered again with builds
 * shed to make that room: no event over 64 KiB, edits included. Caller deletes. */
cJSON *bridge_compose(struct bridge *b, const struct route *r, size_t i, const struct zuul_event *ev,
		      const char *key, struct report_context *ctx, const struct chatops_owners *owners,
		      const char *claim_txn, bool repeat);

/* ---- bridge_details.c ---- */
/* report_context.details_of: the details module's findings for a build (data: the bridge). */
const struct build_details *bridge_details_of(const char *build_uuid, void *data);
/* details_edit_fn: renders a posted report again with its builds' details and queues the
 * edit of its message (data: the bridge). */
int bridge_details_edit(const struct details_posted *p, void *data);

/* ---- bridge_intake.c ---- */
/* In on_message: true when the store cannot take the report now (it is not processed and
 * must not be acknowledged; the turn's end closes the connection). */
bool bridge_intake_refuses(struct bridge *b);
/* Closes the MQTT session without acknowledging what it read, and looks at the disk
 * every few seconds until the store takes reports again, then connects anew. */
void bridge_intake_pause(struct bridge *b);
/* At every turn's end, before any acknowledgement is written. */
void bridge_intake_turn_end(struct bridge *b);
/* store_commit said STORE_COMMIT_LOST_TO_FULL: forgets what the lost batch queued, reads
 * the room side again from the store, and refuses reports (as above) until there is room. */
void bridge_intake_batch_lost(struct bridge *b);

/* ---- bridge_rooms.c ---- */
/* Adds the rooms the configuration names and joins those not joined (once whoami answered). */
void bridge_rooms_sync(struct bridge *b);
/* Asks who the bot is; the joins follow the answer. */
void bridge_start_whoami(struct bridge *b);
/* The deliverer's hook: a send was refused because the bot is not in the room. */
void bridge_on_send_not_joined(const char *room, const char *reason, void *data);
/* Applies, at the turn's end, the newest own membership /sync showed per room. */
void bridge_membership_check(struct bridge *b);
void bridge_room_seen_clear(struct room_join *rj);
/* chatops_host hooks: the bot's own m.room.member events, and invites. */
void bridge_chatops_own_membership(const char *room_id, const char *membership, const char *sender,
				   const char *reason, void *data);
void bridge_chatops_invited(const char *room_id, const cJSON *invite_state, void *data);
/* chatops_host hook: /sync showed m.room.encryption in a followed room. */
void bridge_chatops_room_encrypted(const char *room_id, void *data);

#endif
