/* chatops_internal: what the chatops_*.c files share: the state of the room side and the
 * helpers more than one part uses. Not a public interface: include/chatops.h is. */
#ifndef ZMB_CHATOPS_INTERNAL_H
#define ZMB_CHATOPS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "chatops.h"
#include "command_budget.h"
#include "commands.h"
#include "store.h"
#include "strbuf.h"
#include "sync.h"
#include "zuul.h"

#define KV_SYNC_TOKEN "sync.next_batch"
#define KV_LAST_HANDOVER "oncall.last_handover"
#define KV_MUTES "chatops.mutes"
#define KV_INCIDENTS "triage.incidents"
/* The bridge's heartbeat (wall ms), written every HEARTBEAT_MS: at start-up, an old one
 * says how long the bridge was away. */
#define KV_ALIVE "bridge.alive_ms"
#define HEARTBEAT_MS 60000
/* The catch-up in progress: {"away_since": ms, "reports": [...], "skip": {txn: ms}}. */
#define KV_CATCHUP "catchup.state"
/* How long a summarised message stays in the skip set: its replies and edits queue
 * within seconds, and the set must not grow forever. */
#define CATCHUP_SKIP_KEEP_MS (24LL * 3600 * 1000)
/* The private content key that marks a failure message and carries its state, so the
 * claims can be rebuilt from the room when state_dir is lost (see rebuild.h). */
#define FAILURE_MARKER "zmb.failure"
/* `claims` lists at most this many open failures; the rest are counted. */
#define CLAIMS_LIST_MAX 20

/* A `mute`: failures of project (or of one job) in room are counted, not posted. Mutes
 * are few and small, so they live as one JSON value in the store's key-value table. */
struct mute {
	char *room;    /* configured name */
	char *project;
	char *job;     /* NULL: every job */
	int64_t until_ms;
	long long count;
};

/* What /sync told us about a room's state: who may command, and who created it. */
struct room_state {
	char *room;          /* configured name */
	char *room_id;
	cJSON *power_levels; /* content of m.room.power_levels, or NULL */
	char *creator;
	cJSON *create_content;   /* m.room.create's content: room version, additional creators */
	bool create_known;       /* the create event was read (or cannot be) */
	bool unreadable_logged;  /* an encrypted message was seen and said so */
};

struct chatops {
	struct loop *loop;
	const struct config *conn;
	const struct config *cfg;
	char *user_id;
	struct chatops_host host;
	struct store *store;
	struct sync *sync;
	struct rebuild *rebuild;   /* reading claims back from the rooms; /sync waits for it */
	bool history_pending;      /* the rooms' history must be read before reports are decided */
	struct room_state *rooms;
	size_t n_rooms;
	uint64_t tick_timer;
	struct mute *mutes;
	size_t n_mutes;
	/* Wall time of the next escalation step due; 0: look again at the next tick (a new
	 * failure, a claim taken back or a reload may have moved it). */
	int64_t next_escalation_ms;
	struct incident_tracker *incidents; /* NULL without a triage group */
	int64_t alive_written_ms;
	/* The catch-up (see chatops_away_begin): away_since (0: not away), the summarised
	 * reports, and the txns of messages the summary replaces. Persisted as KV_CATCHUP. */
	int64_t away_since_ms;
	cJSON *catchup;
	struct matrix_client *create_client; /* reads rooms' create events (chatops_rooms.c) */
	char *create_fetching;               /* the room whose create event is being read */
	struct command_budget *answer_budget; /* answers per member and room; made at first use */
	struct zuul_admin *zuul;              /* calls to Zuul's admin API (actions); made at first use */
	struct actions_state *actions;        /* actions waiting for their turn or Zuul's answer */
	struct topic_state *topic;            /* the rooms' topics (chatops_topic.c); made at first use */
};

/* ---- chatops.c ---- */
struct room_state *chatops_room_by_id(struct chatops *c, const char *room_id);
/* Whether the configured room name `room` is the room room_id. Compared by id: two names
 * (an alias and the id) may be configured for one room. */
bool chatops_room_is(const struct chatops *c, const char *room, const char *room_id);
/* The string member key of o, or NULL. */
const char *chatops_str_at(const cJSON *o, const char *key);
/* The JSON value stored under key in the store's key-value table when it is of type
 * (cJSON_Array or cJSON_Object), else an empty one (nothing stored, or not ours). Caller
 * deletes. */
cJSON *chatops_kv_json(struct chatops *c, const char *key, int type);
/* Stores value under key in the store's key-value table. */
void chatops_kv_put_json(struct chatops *c, const char *key, const cJSON *value);
/* An m.notice that pings nobody (m.mentions empty): replies only repeat checked words. */
cJSON *chatops_notice_new(const char *text);

/* ---- chatops_rooms.c ---- */
/* Takes the room's m.room.create event (sender, content) as its creator facts. */
void chatops_room_create_event(struct room_state *rs, const cJSON *ev);
/* Reads the create event of every room that lacks it, one request at a time. */
void chatops_rooms_fetch_facts(struct chatops *c);
void chatops_rooms_free(struct chatops *c);

/* ---- chatops_commands.c ---- */
void chatops_handle_command(struct chatops *c, struct room_state *rs, const struct sync_event *ev, const char *body);
void chatops_mutes_load(struct chatops *c);
void chatops_mute_clear(struct mute *m);
/* Ends the mutes whose time is up, with a notice in their room. */
void chatops_expire_mutes(struct chatops *c);

/* ---- chatops_flaky.c ---- */
/* The answer to `flaky [PROJECT]` in rs: the flaky jobs of its routes (project: only its). */
cJSON *chatops_flaky_content(struct chatops *c, const struct room_state *rs, const char *project);

/* ---- chatops_failures.c ---- */
/* Actions that report a problem: the ones a mute silences and a failure thread collects. */
bool chatops_is_failure_action(const char *action);
/* A new failure marker (FAILURE_MARKER's value): count 1, opened now, nothing recovered
 * or escalated yet. Caller owns it. */
cJSON *chatops_marker_new(const char *txn, const char *route, const char *key, const char *thread_key);
/* "project (branch) pipeline: job, job" from a thread key "project|branch|pipeline|jobs". */
void chatops_describe_thread_key(const char *tkey, struct strbuf *out);
/* Appends "@a, @b and @c" as pills (html) and plain ids (text). */
void chatops_list_users(char **users, size_t n, struct strbuf *html, struct strbuf *text);
void chatops_free_users(char **users, size_t n);
/* Edits the failure's message to show its state now (recovered, resolved, claimed, count);
 * `change` makes each edit its own transaction. */
void chatops_post_claim_edit(struct chatops *c, const struct store_failure *f, const char *change);
/* A claim or resolve reaction, sent in rs: counts only when rs is its failure's room. */
void chatops_on_reaction(struct chatops *c, const struct room_state *rs, const struct sync_event *ev,
			 const cJSON *content);
/* A redaction in rs: unclaims only a recorded reaction of a failure of rs, taken back by
 * its sender or by a moderator there. */
void chatops_on_redaction(struct chatops *c, const struct room_state *rs, const struct sync_event *ev,
			  const cJSON *content);

/* Fills the failure side of a report's facts (disposition.h): the streaks a success
 * ends, the open failure a failure repeats. facts->away must be set before. */
void chatops_failure_facts(struct chatops *c, const char *route, const struct zuul_event *ev,
			   struct disposition_facts *facts, struct chatops_facts *own);

/* ---- chatops_actions.c: acting on Zuul (issue #17) ---- */
/* Adds "item" to a failure marker: the tenant, project, pipeline and the change (number,
 * patchset) or ref the report was about, what a recheck, dequeue or autohold asks Zuul for.
 * Kept in the room with the marker, so a rebuilt store knows it too. */
void chatops_marker_add_item(cJSON *marker, const struct zuul_event *ev);
/* The action commands (recheck, dequeue, autohold, autoholds, autohold delete) of ev in rs;
 * level is the sender's power level there (LLONG_MAX for a version 12 creator). */
void chatops_actions_command(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
			     const struct commands_parsed *p, long long level);
/* A reaction that acts: 🔁 on a failure, or the confirmation of a dequeue or autohold
 * question. true when it was one of those (handled, whatever the outcome). */
bool chatops_actions_on_reaction(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
				 const cJSON *content);
void chatops_actions_free(struct chatops *c);
/* Every tick: a recheck's next report linked once delivered, waits expired. */
void chatops_actions_tick(struct chatops *c);
/* chatops_actions_incident.c: remembers the items of the reports an incident absorbed (out:
 * what triage made of ev), so a recheck of the incident can re-enqueue them. */
struct incident_outcome;
void chatops_actions_incident_observed(struct chatops *c, const struct zuul_event *ev,
				       const struct incident_outcome *out);

/* ---- chatops_topic.c: the room topic the bridge keeps (on call, workflow) ---- */
/* Sets the rooms' topics that should change: at start, after a handover, a reload, or a
 * change of a room's topic or power levels. Called every tick; cheap when nothing changed. */
void chatops_topic_tick(struct chatops *c);
/* m.room.topic state of room_id from /sync (content: the event's content). */
void chatops_topic_event(struct chatops *c, const char *room_id, const cJSON *content);
/* room_id's power levels changed: a topic the bot could not set is tried again. */
void chatops_topic_power_changed(struct chatops *c, const char *room_id);
void chatops_topic_reload(struct chatops *c);
void chatops_topic_free(struct chatops *c);

/* ---- chatops_escalate.c ---- */
/* Whether nobody claimed or resolved the failure. */
bool chatops_unclaimed(struct chatops *c, const struct store_failure *f);
void chatops_check_escalations(struct chatops *c);
void chatops_check_digests(struct chatops *c);

/* ---- chatops_triage.c ---- */
/* Creates, re-options or drops the incident tracker to match the configuration. */
void chatops_incidents_configure(struct chatops *c);
void chatops_expire_incidents(struct chatops *c);
/* Fills the incident side of a report's facts from what triage said of it. */
void chatops_incident_facts(struct chatops *c, const struct incident_outcome *incidents,
			    struct disposition_facts *facts, struct chatops_facts *own);

/* ---- chatops_catchup.c ---- */
void chatops_catchup_load(struct chatops *c);
void chatops_catchup_save(struct chatops *c);
void chatops_catchup_add_report(struct chatops *c, const char *room, const char *route, const char *action,
				const char *thread_key, const char *what, int64_t at_ms);
/* Writes the heartbeat (at most once a minute); _first also starts a catch-up when the
 * last one is older than catch_up_after. */
void chatops_heartbeat(struct chatops *c);
void chatops_heartbeat_first(struct chatops *c);

#endif
