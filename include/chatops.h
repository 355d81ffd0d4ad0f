/* chatops: the bridge's room side: /sync on the loop, room commands (help, oncall,
 * status...), on-call handover notices. It asks its host (the bridge) to post messages
 * and keep small values, so it knows nothing of MQTT, the outbox or delivery. */
#ifndef ZMB_CHATOPS_H
#define ZMB_CHATOPS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "disposition.h"
#include "loop.h"
#include "incident.h"
#include "owners.h"
#include "stats.h"
#include "store.h"
#include "strbuf.h"
#include "zuul.h"

struct chatops;

/* A room the bridge joined: the name routes use (id or alias) and its resolved id. */
struct chatops_room {
	const char *room;
	const char *room_id;
};

struct chatops_host {
	/* Queues content for a room (its configured name) exactly once per (kind, key):
	 * posting the same pair again is a no-op. 0, or -1 when it could not be queued. */
	int (*post)(const char *room, const char *kind, const char *key, const cJSON *content, void *data);
	/* Appends the answer to `status` (plain text). */
	void (*describe_status)(struct strbuf *out, void *data);
	/* Small persistent values (committed with the rest of the turn). get: caller frees. */
	char *(*kv_get)(const char *key, void *data);
	void (*kv_set)(const char *key, const char *value, void *data);
	/* The transaction id post() gives (kind, key); caller frees. */
	char *(*txn_of)(const char *kind, const char *key, void *data);
	/* Called once when the rooms' history is known (read back, or there was none to
	 * read) and /sync has its first position: reports decided before it would not know
	 * the rooms' failure threads, and reactions to them could fall before that position. */
	void (*history_known)(void *data);
	/* /sync showed the bridge's own m.room.member event in a followed room: membership
	 * as the spec spells it ("leave" with a sender other than the bridge is a kick),
	 * reason may be NULL. Timeline order; may be NULL. */
	void (*own_membership)(const char *room_id, const char *membership, const char *sender, const char *reason,
			       void *data);
	/* /sync showed an invite of the bridge to room_id (any room); invite_state is its
	 * stripped state, or NULL. May be NULL. */
	void (*invited)(const char *room_id, const cJSON *invite_state, void *data);
	/* /sync showed m.room.encryption in a followed room (at start or later). May be NULL. */
	void (*room_encrypted)(const char *room_id, void *data);
	/* The counters /sync adds to (zmb_sync_*: oversized answers, held-back polls); may be NULL. */
	struct stats *stats;
	/* A command went unanswered: its sender or its room had their answers this minute
	 * (see command_budget.h). For the metrics; may be NULL. */
	void (*answer_dropped)(void *data);
	/* Asks for the turn's writes to be committed at its end, not later: an action on Zuul is
	 * recorded before its call goes out (issue #17), and the call waits for the next turn.
	 * A batch lost at that commit recreates chatops, which drops the waiting calls. May be
	 * NULL: then actions are not taken. */
	void (*commit_soon)(void *data);
	void *data;
};

/* conn supplies the Matrix settings of the /sync client and must outlive chatops; cfg
 * supplies the chatops settings (replaced by chatops_reload). user_id: the bridge's own
 * user (NULL until known: see chatops_set_user_id). Mutes work from the start, so reports
 * arriving before the homeserver answered are muted too; /sync waits for chatops_set_rooms. */
struct chatops *chatops_new(struct loop *loop, const struct config *conn, const struct config *cfg,
			    const char *user_id, struct store *store, const struct chatops_host *host);
/* The room state kept in store, to ask what the next report would become
 * (chatops_gather_facts, chatops_triage) without acting: it follows no room, posts
 * nothing and writes nothing, so it may look at the state_dir of a running bridge. */
struct chatops *chatops_view_new(const struct config *cfg, struct store *store);
/* Whether chatops still has to read the rooms' history (a new state_dir) before
 * reports can be decided: the host takes no reports until history_known is called. */
bool chatops_awaits_history(const struct chatops *c);
/* The bridge's own user id, once whoami told it; its events are ignored. */
void chatops_set_user_id(struct chatops *c, const char *user_id);
/* The rooms to watch and answer in (the joined route rooms). The first call starts /sync. */
void chatops_set_rooms(struct chatops *c, const struct chatops_room *rooms, size_t n);
void chatops_reload(struct chatops *c, const struct config *cfg);

/* Until when ev, a report for room (its configured name), is a failure muted there with
 * `mute` (wall ms; 0: not muted). A project mute covers every failure of the project; job
 * mutes cover a failure only when every failed build's job is muted. Changes nothing. */
int64_t chatops_mute_until(struct chatops *c, const char *room, const struct zuul_event *ev);
/* A muted ev was not posted into room: counted against its mutes (the unmute notice
 * tells how many). */
void chatops_mute_count(struct chatops *c, const char *room, const struct zuul_event *ev);

/* The owners of a failure: the winning `owners` rule of each failed build's job (of the
 * report as a whole when no build failed, as in a merge conflict), without repeats. */
#define CHATOPS_OWNERS_MAX 8
struct chatops_owners {
	const struct owners_rule *rules[CHATOPS_OWNERS_MAX];
	size_t n;
};
/* Fills *out (n = 0 for reports that are not failures, or when no rule matches). */
void chatops_find_owners(const struct config *cfg, const struct zuul_event *ev, struct chatops_owners *out);

/* The runbook and hint shown under a failure route r posts: each from the winning owners
 * rule that has one, else the route's own (NULL: none). */
void chatops_what_to_do(const struct config *cfg, const struct route *r, const struct chatops_owners *owners,
			const char **runbook, const char **hint);

/* For a new failure report about to be posted by a route whose mention_oncall is set:
 * adds its owners' users, or when it has none the current on-call, as pills and to
 * m.mentions (nothing for reports that are not failures, or when nobody is found). */
void chatops_mention(struct chatops *c, const struct zuul_event *ev, const struct chatops_owners *owners,
		     cJSON *content);

/* Before a failure report that starts a thread is queued: marks its content with the
 * private key "zmb.failure" (txn, route, key, thread key, opening time; edits carry the
 * count, recovery and escalation too), so the claims can be rebuilt from the room when
 * state_dir is lost, and with what its owners decide about it (escalation delay, rooms
 * to forward to). txn: the message the room will react to. */
void chatops_mark_failure(struct chatops *c, const struct zuul_event *ev, const char *txn, const char *route,
			  const char *key, const struct chatops_owners *owners, cJSON *content);

/* A report was queued under txn for room/route: if it is a failure, the room may claim it
 * (a reaction on its message), so it is remembered with its content. */
void chatops_report_queued(struct chatops *c, const struct zuul_event *ev, const char *txn, const char *room,
			   const char *route, const char *key, const cJSON *content);
/* The failure message queued as txn was rendered again as content (its builds' details
 * came in): the stored content takes content's body and formatted_body, keeping its own
 * mentions and marker, so later claim edits keep the new words; and the message is edited
 * to show them under the claim, recovery and count lines as they stand (pinging nobody).
 * change names the edit: one transaction per (txn, change). 1 edited, 0 when txn is no
 * failure the room can claim (no chatops, or not remembered): the caller edits it itself. */
int chatops_failure_rerendered(struct chatops *c, const char *txn, const cJSON *content, const char *change);
/* A repeat was queued into root_txn's thread as txn: count it and edit the root. */
void chatops_repeat_queued(struct chatops *c, const char *root_txn, const char *txn);
/* A report was queued into room (configured name) as txn, and the report's routing is done:
 * a recheck waiting for this item's next report links it in its failure's thread. */
void chatops_actions_report_posted(struct chatops *c, const char *room, const char *txn);
void chatops_actions_report_done(struct chatops *c, const struct zuul_event *ev);
/* Calls to Zuul's admin API queued or waiting for their answer: a stop waits for them a
 * while (its answer is then said and audited). */
size_t chatops_actions_pending(struct chatops *c);
/* The loop has ended: the calls still unanswered are recorded as interrupted (the next start
 * says so in their threads; they are never sent again). Before the store's last commit. */
void chatops_actions_interrupt(struct chatops *c);
/* A success ends the open failures of route with the same project, branch and pipeline
 * (disposition.h's closes_streaks): marks them recovered, says so in their threads and
 * edits their roots. Called for every route, matched or not: a route that posts only
 * failures still learns of recovery. While away (see chatops_away_begin), a failure that
 * was never delivered is not told as recovered: it joins the catch-up summary, and the
 * success with it. */
void chatops_close_streaks(struct chatops *c, const char *route, const struct zuul_event *ev);

/* The room state a report's disposition in route's room depends on (disposition.h),
 * read without changing anything: open failure streaks, the open failure it repeats,
 * mutes, the catch-up, and the incident that absorbed it (incidents: what triage said
 * of this report). Fills the room side of *facts, which borrows from *own; c may be NULL
 * (no room side). Free own with chatops_facts_clear. */
struct chatops_facts {
	struct store_failure streak;
	struct store_failure repeat;
	struct strbuf incident;
};
void chatops_gather_facts(struct chatops *c, const struct route *r, const struct zuul_event *ev,
			  const struct incident_outcome *incidents, struct disposition_facts *facts,
			  struct chatops_facts *own);
void chatops_facts_clear(struct chatops_facts *own);

/* Catch-up after an absence (chatops.catch_up_after): from since_ms (wall clock) the bridge
 * counts as away: failures that arrive and recover before they were posted are summarised
 * instead (the bridge holds deliveries while a backlog comes in). At start-up the
 * heartbeat the bridge writes every minute tells whether it was away; the bridge calls
 * begin when the broker or the homeserver was gone too long. end posts one summary per
 * room and forgets the absence. No-ops when catch_up_after is 0. */
void chatops_away_begin(struct chatops *c, int64_t since_ms);
void chatops_away_end(struct chatops *c);
/* When the current absence began (wall ms); 0: not away. */
int64_t chatops_away_since(const struct chatops *c);
/* For the deliverer: whether an item is a message the summary replaced, or a reply or
 * edit of one, and must be dropped unsent. */
bool chatops_skip(struct chatops *c, const struct outbox_item *item);
/* Triage (the `triage` group): a failure report is observed once, before the routes;
 * true when it was absorbed into infrastructure incidents (no per-project alert). *out is
 * always filled; free it with incident_outcome_free. */
bool chatops_triage(struct chatops *c, const struct zuul_event *ev, const char *key, struct incident_outcome *out);
/* For a route that matched the report: posts the incidents it opened into the route's room
 * (a claimable message, mentioning the on-call when `mention`), and edits those that grew. */
void chatops_incidents_post(struct chatops *c, const struct route *r, bool mention, const struct incident_outcome *out);

/* The homeserver accepted txn as event_id (from the deliverer). */
void chatops_delivered(struct chatops *c, const char *txn, const char *event_id);
void chatops_free(struct chatops *c);

#endif
