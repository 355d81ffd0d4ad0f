/* bridge_intake: the bridge stops taking reports while the state database cannot store
 * them (disk full) and goes on delivering what it stored. A refused report is never
 * acknowledged: the MQTT connection is closed before its PUBACK is written, and the
 * broker keeps it (a persistent session) until the bridge connects again. */
#include "bridge_internal.h"

#include <stdio.h>

#include "chatops.h"
#include "deliver.h"
#include "log.h"
#include "mqtt.h"
#include "store.h"

/* How often a full disk is looked at again (one fallocate of the reserve). */
#define INTAKE_SPACE_RETRY_MS 2000

static void space_timer_fired(struct loop *loop, void *data);

bool bridge_intake_refuses(struct bridge *b)
{
	if (store_can_take_reports(b->store))
		return false;
	b->intake_refused = true;
	return true;
}

static void arm_space_timer(struct bridge *b)
{
	if (!b->space_timer)
		b->space_timer = loop_timer_add(b->loop, INTAKE_SPACE_RETRY_MS, space_timer_fired, b);
}

void bridge_intake_pause(struct bridge *b)
{
	b->intake_refused = false;
	b->stats.state_db_problem = store_full_reason(b->store);
	if (!b->mqtt)
		return;
	/* What this turn stored before is committed as bookkeeping now; its acknowledgements
	 * go down with the connection too (the broker redelivers, the txn ids make them
	 * duplicates). */
	b->unacked = 0;
	mqtt_session_free(b->mqtt); /* acknowledgements are pending: no DISCONNECT, no PUBACK */
	b->mqtt = NULL;
	log_kv(ZLOG_WARN, "MQTT intake paused: reports stay with the broker until the state database has room",
	       "reason", b->stats.state_db_problem, "state_dir", b->conn->state_dir, NULL);
	bridge_mqtt_state(b, MQTT_DISCONNECTED, "intake paused: state database full");
	arm_space_timer(b);
}

static void space_timer_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct bridge *b = data;
	b->space_timer = 0;
	if (b->stopping)
		return;
	if (!store_space_recheck(b->store)) {
		arm_space_timer(b);
		return;
	}
	b->stats.state_db_problem = NULL;
	if (b->mqtt)
		return;
	log_kv(ZLOG_INFO, "MQTT intake resumed", NULL);
	b->mqtt = bridge_mqtt_new(b);
	if (!b->mqtt) {
		log_kv(ZLOG_ERROR, "cannot create the MQTT client; trying again shortly", NULL);
		arm_space_timer(b);
		return;
	}
	/* A new state_dir still reading the rooms' history starts it when that is done. */
	if (!b->mqtt_waits_for_history && mqtt_session_start(b->mqtt) != 0)
		log_kv(ZLOG_WARN, "MQTT connection could not start", NULL);
}

/* The store lost the turn's batch to a full disk (store_commit rolled it back). That is
 * what a restart after an exit would begin from, without the restart: the deliverer and
 * the room side drop what they took from the batch, and MQTT goes down unacknowledged. */
void bridge_intake_batch_lost(struct bridge *b)
{
	/* Reports of the batch: none of them was acknowledged (acknowledgements are written
	 * only after a commit), so the broker has them all and sends them again. */
	size_t forgotten = deliverer_batch_lost(b->deliverer, store_lost_from_id(b->store));
	/* The room side keeps copies of what it stores (mutes and their counts, incidents,
	 * the catch-up, the /sync position) and the batch changed them: they are read again
	 * from the store, as at a start. /sync resumes from the position stored, so what the
	 * rooms said since (a claim, a command) is read and recorded again. */
	if (b->chatops && !b->stopping) {
		chatops_free(b->chatops);
		b->chatops = NULL;
		bridge_chatops_update(b);
	}
	char count[24];
	snprintf(count, sizeof count, "%zu", forgotten);
	log_kv(ZLOG_ERROR,
	       "state database full in mid-batch: the batch is rolled back; its reports stay with the broker "
	       "(not acknowledged) and come again once there is room",
	       "reason", store_full_reason(b->store), "deliveries_forgotten", count, "state_dir",
	       b->conn->state_dir, NULL);
	b->intake_refused = true;
	bridge_intake_turn_end(b);
	b->unacked = 0; /* no acknowledgement is owed any more: the session is gone */
}

void bridge_intake_turn_end(struct bridge *b)
{
	b->stats.state_db_problem = store_full_reason(b->store);
	if (b->store_broken)
		return; /* the bridge stops, acknowledging nothing */
	if (b->intake_refused || (b->stats.state_db_problem && b->mqtt))
		bridge_intake_pause(b);
	if (b->stats.state_db_problem)
		arm_space_timer(b);
}
