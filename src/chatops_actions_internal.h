/* chatops_actions_internal: what the chatops_actions*.c files share: the item an action is
 * about, a call to Zuul on its way, and the helpers that check, record, say and audit it.
 * chatops_actions_call.c owns the calls; chatops_actions_incident.c acts on an incident's items. */
#ifndef ZMB_CHATOPS_ACTIONS_INTERNAL_H
#define ZMB_CHATOPS_ACTIONS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "chatops_internal.h"
#include "config.h"
#include "strbuf.h"
#include "zuul_admin.h"

enum outcome { OUT_ACCEPTED, OUT_REFUSED, OUT_UNREACHABLE, OUT_DENIED };

/* What an action is about: a failure's item, as its marker tells it. Owned strings. */
struct action_item {
	char *tenant, *project, *pipeline, *change, *patchset, *ref;
};

struct actions_batch;

/* One action on its way: everything the answer needs, owned. */
struct call {
	struct chatops *c;
	char *kind;       /* "recheck", "dequeue", "autohold", "autoholds", "autohold-delete" */
	char *room;       /* configured name */
	char *event_id;   /* the acting event (the command; the reaction for a 🔁) */
	char *root;       /* the failure's event: its thread gets the answer; NULL: reply to event_id */
	char *reply_to;   /* the event the answer replies to */
	char *user;
	char *what;       /* "recheck of SovereignCloudStack/standards refs/heads/main in periodic-daily" */
	char *api;        /* the tenant's web root */
	struct action_item it;
	struct zuul_admin_request req;
	uint64_t timer;   /* the next turn's start of the call; 0 once started */
	struct actions_batch *batch; /* one of an incident's rechecks: answered together; else NULL */
	size_t batch_slot;           /* its line in the batch's summary */
	struct call *next;
};

/* ---- chatops_actions.c ---- */
extern const char *const actions_outcome_names[];
void actions_item_clear(struct action_item *it);
void actions_item_from_json(const cJSON *o, struct action_item *it);
void actions_item_to_json(const struct action_item *it, cJSON *o);
/* An item's identity (tenant, project, pipeline, change, patchset, ref) as one string:
 * identical items are one. Caller frees. */
char *actions_item_key(const cJSON *item);
/* "change 812,3 of org/repo in check" or "refs/heads/main of org/repo in periodic-daily". */
void actions_describe_item(const struct action_item *it, struct strbuf *out);
/* "recheck of ... (tenant scs)"; req: a dequeue's or autohold's request, or NULL. Caller frees. */
char *actions_describe_action(const char *kind, const struct action_item *it, const cJSON *req);
/* The failure a command is about (its thread's root, else the message it replies to), of
 * the command's own room. 1 with *f filled, or 0. */
int actions_target_failure(struct chatops *c, const struct sync_event *ev, struct store_failure *f);
/* The item of failure f from its marker; false when it has none. */
bool actions_failure_item(const struct store_failure *f, struct action_item *it);
/* A notice in root's thread answering reply_to (no root: a reply to reply_to), once per key. */
void actions_post_notice(struct chatops *c, const char *room, const char *root, const char *reply_to, const char *key,
			 const char *text);
/* The audit line of one action on one item (it may be NULL). */
void actions_audit(const char *kind, const char *user, const struct action_item *it, enum outcome o, long status,
		   const char *reason, const char *event_id);
void actions_count(struct chatops *c, enum outcome o);
/* NULL when user may act on tenant in rs, else why not (into out). */
const char *actions_denial(struct chatops *c, const struct room_state *rs, const char *user,
			   const struct config_actions_tenant *t, const char *tenant, struct strbuf *out);
/* Records ev as denied (once) and says why in root's thread. */
void actions_deny(struct chatops *c, const struct room_state *rs, const struct sync_event *ev, const char *kind,
		  const struct action_item *it, const char *root, const char *why);

/* ---- chatops_actions_call.c ---- */
/* The request for kind on item it (req: a confirmed dequeue's or autohold's). 0, or -1 with why. */
int actions_build_request(const char *kind, const struct action_item *it, const cJSON *req,
			  struct zuul_admin_request *out, const char **why);
struct call *actions_call_new(const char *kind, const char *room, const char *event_id, const char *root,
			      const char *reply_to, const char *user, const char *api);
/* Hands k to the next turn (the acting event's record is committed at this turn's end). */
void actions_queue_call(struct chatops *c, struct call *k);

/* ---- chatops_actions_incident.c ---- */
/* Whether failure f is an incident's message. */
bool actions_is_incident(const struct store_failure *f);
/* A command said in incident f's thread (or as a reply to it): recheck acts on its items,
 * the others are answered with where to say them. */
void actions_incident_command(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
			      const char *kind, const struct store_failure *f);
/* 🔁 on incident f's message: the recheck of its items. */
void actions_incident_reaction(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
			       const struct store_failure *f);
/* k's answer (k->batch set): counted into its batch; the last one says the summary. */
void actions_batch_answer(struct chatops *c, struct call *k, enum outcome o, const char *reason);
/* k is dropped unanswered (the chatops state goes): its batch goes with its last call. */
void actions_batch_drop(struct call *k);

/* ---- chatops_actions_follow.c ---- */
struct actions_follow;
/* The follow state's place in the chatops state (chatops_actions_call.c owns it). */
struct actions_follow **actions_follow_slot(struct chatops *c);
void actions_follow_free(struct actions_follow *f);
/* k (an accepted recheck in a thread) waits for its item's next report. */
void actions_follow_add(struct chatops *c, const struct call *k);
/* Links the reports whose message got its event id; forgets waits past their day. */
void actions_follow_tick(struct chatops *c);

/* ---- chatops_actions_interrupted.c ---- */
/* k was still waiting for Zuul when the daemon stopped: its outcome is unknown (state
 * "interrupted"), or, its turn not come, it was never sent ("not-sent"). Recorded with what
 * the next start tells, logged; never sent again. */
void actions_record_interrupted(struct chatops *c, const struct call *k);
/* At the first tick: tells each thread whose action the last run left unanswered. */
void actions_tell_interrupted(struct chatops *c);

#endif
