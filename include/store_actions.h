/* store_actions: the zuul_action table of the state store (schema version 6): every Matrix
 * event that acts on Zuul (a command, a 🔁 reaction, a confirming reaction) by its event id,
 * written and committed before the call, so the same event seen again (a replayed /sync,
 * a restart) never acts twice; and the dequeues and autoholds waiting for their asker's
 * confirmation, which survive a restart. */
#ifndef ZMB_STORE_ACTIONS_H
#define ZMB_STORE_ACTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* What an acting event asked for; strings owned when read from the store. */
struct store_action {
	char *event_id;     /* the acting event */
	char *kind;         /* "recheck", "dequeue", "autohold", "autoholds", "autohold-delete", "confirm" */
	char *room;         /* configured name */
	char *user_id;      /* who asked */
	char *request_json; /* what to send (tenant, item, job, count, reason...), NULL: nothing */
	char *question_txn; /* a dequeue or autohold: the txn of the question awaiting the confirmation */
	char *state;        /* "pending" (awaiting the confirmation), "sent", "accepted", "refused",
			     * "unreachable", "denied", "expired", "confirmed" (a confirm row) */
	int64_t created_ms;
	int64_t expires_ms; /* pending: the confirmation must come before this; else 0 */
};

/* Records a acting event before it acts. 1: recorded now (act); 0: the event was recorded
 * before (seen again: act not); -1: error (logged; act not). */
int store_action_begin(struct store *st, const struct store_action *a);
/* The state (and from now on, its outcome) of the action of event_id. 0, or -1 (logged). */
int store_action_set_state(struct store *st, const char *event_id, const char *state);
/* The action awaiting its confirmation on the question whose message is event_id (the
 * message the bridge sent as question_txn). 1 and *out filled, 0 none, -1 error. */
int store_action_by_question(struct store *st, const char *question_event_id, struct store_action *out);
int store_action_get(struct store *st, const char *event_id, struct store_action *out);
void store_action_clear(struct store_action *a);
/* Forgets actions created before cutoff_ms. How many, or -1 (logged). */
int store_actions_prune(struct store *st, int64_t cutoff_ms);

#endif
