/* deliver: per-room ordered delivery of outbox items to Matrix, with retries,
 * rate-limit pauses and dead letters. See include/deliver.h for the policy. */
#include "deliver.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "membership.h"
#include "relations.h"
#include "strbuf.h"
#include "supersede.h"

/* A room's queue in memory is a window onto its outbox rows: at most DELIVER_WINDOW
 * items (each holds its ~3 KB content), refilled from the store once it runs down to
 * DELIVER_REFILL_AT. The outbox is the queue of record, so memory stays flat however
 * long the backlog grows (a homeserver outage, a burst). */
#define DELIVER_WINDOW 256
#define DELIVER_REFILL_AT (DELIVER_WINDOW / 4)
/* Command answers (deliver_is_answer) wait while a report of their room waits, so they do
 * not count toward the window: the reports behind them must still be read in. Memory stays
 * bounded all the same: past this many items a room reads no more from the store, and its
 * oldest answer goes out next, in order. Answers are few (command_budget.h), so a room
 * needs many minutes of a backlog behind a rate limit to come near it. */
#define DELIVER_MEMORY_MAX (2 * DELIVER_WINDOW)

/* One room's queue, in outbox order. Items [head, n) wait; the next to go is the oldest
 * report, else the oldest answer (see next_index), so a report never waits behind the
 * answers to room commands queued before it, and each kind keeps its own order. */
struct room_queue {
	struct deliverer *d; /* back-pointer: the queue is the context of its requests and timers */
	char *room;       /* as configured: id or alias */
	char *room_id;    /* resolved; NULL until the room is ready */
	char *failed;     /* non-NULL: the room is unusable, this is why */
	char *paused;     /* non-NULL: the bot is not in the room (kicked, banned, not invited):
			   * the items wait, in order, until deliverer_room_ready */
	struct outbox_item *items;
	size_t head, n, cap;
	size_t answers; /* command answers among [head, n) */
	/* spilled: the store holds items of this room with ids above loaded_max that are not
	 * in memory (about `spilled_count` of them). Ids grow, so a refill reads them in order. */
	bool spilled;
	int64_t loaded_max;
	size_t spilled_count;
	bool in_flight;
	int64_t flight_id; /* the outbox id of the item in flight: it need not be items[head] */
	bool flight_lost;  /* its row was rolled back (deliverer_batch_lost): nothing to record */
	size_t next;       /* the index pump is deciding about (for the supersede check's callbacks) */
	uint64_t retry_timer;
	char *last_logged; /* the failure last logged loudly, so a streak is logged once */
};

struct deliverer {
	struct loop *loop;
	struct store *store;
	struct matrix_client *mc;
	const struct config_matrix *cfg;
	struct room_queue **rooms;
	size_t n_rooms;
	uint64_t paused_until_ms; /* homeserver-wide pause after a 429 */
	uint64_t pause_timer;
	bool shutting_down;
	uint64_t rng;
	struct stats *stats;
	deliver_done_fn on_done;
	void *on_done_data;
	deliver_skip_fn on_skip;
	void *on_skip_data;
	deliver_not_joined_fn on_not_joined;
	void *on_not_joined_data;
	bool held;
};

static void pump(struct deliverer *d, struct room_queue *q);

bool deliver_is_answer(const struct outbox_item *item)
{
	return item->route && item->action && strcmp(item->route, DELIVER_ANSWER_ROUTE) == 0 &&
	       strcmp(item->action, DELIVER_ANSWER_ACTION) == 0;
}

uint64_t deliver_backoff_ms(int attempt, int min_ms, int max_ms, double random01)
{
	if (attempt < 1)
		attempt = 1;
	if (min_ms < 1)
		min_ms = 1;
	if (max_ms < min_ms)
		max_ms = min_ms;
	double delay = (double)min_ms * pow(2.0, (double)(attempt - 1 < 40 ? attempt - 1 : 40));
	if (delay > (double)max_ms)
		delay = (double)max_ms;
	if (random01 < 0 || random01 >= 1)
		random01 = 0;
	return (uint64_t)(delay * (0.5 + random01 / 2.0));
}

/* xorshift64*: jitter needs no cryptographic quality, only independence between rooms. */
static double next_random01(struct deliverer *d)
{
	uint64_t x = d->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	d->rng = x;
	return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

struct deliverer *deliverer_new(struct loop *loop, struct store *store, struct matrix_client *mc,
				const struct config_matrix *cfg, struct stats *stats)
{
	struct deliverer *d = xcalloc(1, sizeof *d);
	d->stats = stats;
	d->loop = loop;
	d->store = store;
	d->mc = mc;
	d->cfg = cfg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	d->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ULL;
	return d;
}

void deliverer_free(struct deliverer *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_rooms; i++) {
		struct room_queue *q = d->rooms[i];
		for (size_t j = q->head; j < q->n; j++)
			store_item_clear(&q->items[j]);
		loop_timer_cancel(d->loop, q->retry_timer);
		free(q->items);
		free(q->room);
		free(q->room_id);
		free(q->failed);
		free(q->paused);
		free(q->last_logged);
		free(q);
	}
	loop_timer_cancel(d->loop, d->pause_timer);
	free(d->rooms);
	free(d);
}

void deliverer_on_done(struct deliverer *d, deliver_done_fn fn, void *data)
{
	d->on_done = fn;
	d->on_done_data = data;
}

void deliverer_on_skip(struct deliverer *d, deliver_skip_fn fn, void *data)
{
	d->on_skip = fn;
	d->on_skip_data = data;
}

void deliverer_on_not_joined(struct deliverer *d, deliver_not_joined_fn fn, void *data)
{
	d->on_not_joined = fn;
	d->on_not_joined_data = data;
}

void deliverer_hold(struct deliverer *d, bool hold)
{
	bool was = d->held;
	d->held = hold;
	if (was && !hold)
		for (size_t i = 0; i < d->n_rooms; i++)
			pump(d, d->rooms[i]);
}

static struct room_queue *room_get(struct deliverer *d, const char *room)
{
	for (size_t i = 0; i < d->n_rooms; i++)
		if (strcmp(d->rooms[i]->room, room) == 0)
			return d->rooms[i];
	struct room_queue *q = xcalloc(1, sizeof *q);
	q->d = d;
	q->room = xstrdup(room);
	d->rooms = xrealloc(d->rooms, (d->n_rooms + 1) * sizeof *d->rooms);
	d->rooms[d->n_rooms++] = q;
	return q;
}

/* Takes items[at] out of the queue (sent, dropped or dead): the items behind it move up. */
static void queue_remove(struct room_queue *q, size_t at)
{
	if (deliver_is_answer(&q->items[at]))
		q->answers--;
	store_item_clear(&q->items[at]);
	if (at != q->head) {
		/* Only a report sent past waiting answers: at most the answers move. */
		memmove(q->items + at, q->items + at + 1, (q->n - at - 1) * sizeof *q->items);
		q->n--;
		return;
	}
	q->head++;
	/* Compact once the consumed prefix dominates, keeping pops amortised O(1). */
	if (q->head == q->n) {
		q->head = q->n = 0;
	} else if (q->head > 64 && q->head * 2 > q->n) {
		memmove(q->items, q->items + q->head, (q->n - q->head) * sizeof *q->items);
		q->n -= q->head;
		q->head = 0;
	}
}

/* The item to send next: the oldest report waiting, else the oldest answer. */
static size_t next_index(const struct room_queue *q)
{
	if (q->answers == 0)
		return q->head;
	for (size_t i = q->head; i < q->n; i++)
		if (!deliver_is_answer(&q->items[i]))
			return i;
	return q->head;
}

/* Where the item in flight is now (the window may have slid meanwhile), or SIZE_MAX. */
static size_t flight_index(const struct room_queue *q)
{
	for (size_t i = q->head; i < q->n; i++)
		if (q->items[i].id == q->flight_id)
			return i;
	return SIZE_MAX;
}

/* Logs a failure loudly the first time it happens in a streak, quietly after. */
static void log_failure_once(struct room_queue *q, enum log_level level, const char *what, const char *reason,
			     const struct outbox_item *it)
{
	bool repeat = q->last_logged && strcmp(q->last_logged, reason) == 0;
	log_kv(repeat ? ZLOG_DEBUG : level, what, "room", q->room, "reason", reason, "route", it->route, "txn",
	       it->txn_id, "key", it->event_key, NULL);
	if (!repeat) {
		free(q->last_logged);
		q->last_logged = xstrdup(reason);
	}
}

static void kill_item(struct deliverer *d, struct room_queue *q, size_t at, const char *reason)
{
	struct outbox_item *it = &q->items[at];
	log_failure_once(q, ZLOG_ERROR, "delivery failed permanently; report moved to dead letters", reason, it);
	store_outbox_kill(d->store, it->id, reason, clock_real_ms());
	stats_route(d->stats, it->route)->failed++;
	queue_remove(q, at);
}

static void retry_timer_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct room_queue *q = data;
	q->retry_timer = 0;
	pump(q->d, q);
}

static void pause_timer_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct deliverer *d = data;
	d->pause_timer = 0;
	for (size_t i = 0; i < d->n_rooms; i++)
		pump(d, d->rooms[i]);
}

static void schedule_retry(struct deliverer *d, struct room_queue *q, uint64_t delay_ms)
{
	q->retry_timer = loop_timer_add(d->loop, delay_ms, retry_timer_fired, q);
}

/* Info only: the removal itself is the bridge's to log loudly, once. */
static void room_pause(struct room_queue *q, const char *reason)
{
	if (!q->paused)
		log_kv(ZLOG_INFO, "room paused: the bot is not in it; its reports wait in the outbox", "room", q->room,
		       "reason", reason, NULL);
	free(q->paused);
	q->paused = xstrdup(reason);
}

static void on_send_done(const struct matrix_response *r, void *data)
{
	struct room_queue *q = data;
	struct deliverer *d = q->d;
	q->in_flight = false;
	d->stats->matrix_reachable = r->status != 0;
	size_t at = flight_index(q);
	if (q->flight_lost) {
		/* The report was sent from a batch the store lost (deliverer_batch_lost): no row
		 * to update and nothing to tell chatops. The broker sends the report again, and
		 * its new row carries the same txn id, which the homeserver answers with the
		 * event this send made, if it made one. */
		q->flight_lost = false;
		log_kv(ZLOG_INFO, "a send from a batch the store lost has finished; the broker redelivers its report",
		       "room", q->room, "status", r->status == 200 ? "accepted" : "not accepted", NULL);
		pump(d, q);
		return;
	}
	if (at == SIZE_MAX) {
		/* Nothing takes an item out of its queue while it is in flight; should that ever
		 * change, the outbox still holds the item and the next start sends it again. */
		log_kv(ZLOG_ERROR, "a finished send's item is no longer queued; it stays in the outbox", "room",
		       q->room, NULL);
		pump(d, q);
		return;
	}
	struct outbox_item *it = &q->items[at];

	const cJSON *eid = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "event_id") : NULL;
	if (r->status == 200 && cJSON_IsString(eid)) {
		store_outbox_delivered(d->store, it->id, it->txn_id, eid->valuestring, clock_real_ms());
		stats_route(d->stats, it->route)->posted++;
		stats_observe_latency(d->stats, (double)(clock_real_ms() - it->created_ms) / 1000.0);
		if (q->last_logged) {
			log_kv(ZLOG_INFO, "delivery recovered", "room", q->room, NULL);
			free(q->last_logged);
			q->last_logged = NULL;
		}
		log_kv(ZLOG_DEBUG, "delivered", "room", q->room, "route", it->route, "txn", it->txn_id, "key",
		       it->event_key, "event_id", eid->valuestring, NULL);
		if (d->on_done)
			d->on_done(it, eid->valuestring, d->on_done_data);
		queue_remove(q, at);
		pump(d, q);
		return;
	}

	struct strbuf reason = STRBUF_INIT;
	if (r->status == 200)
		strbuf_puts(&reason, "HTTP 200 without an event_id");
	else
		matrix_response_describe(r, &reason);

	if (r->status == 200 || matrix_response_is_transient(r)) {
		/* A 200 without event_id is a lying server: retrying is safe because the
		 * txnId makes the send idempotent. */
		it->attempts++;
		store_outbox_attempt_failed(d->store, it->id);
		uint64_t delay;
		if (r->status == 429) {
			d->stats->rate_limited++;
			d->stats->retries++;
			delay = r->retry_after_ms >= 0
					? (uint64_t)r->retry_after_ms
					: deliver_backoff_ms(it->attempts, d->cfg->retry_min_ms, d->cfg->retry_max_ms,
							     next_random01(d));
			d->paused_until_ms = loop_now_ms(d->loop) + delay;
			loop_timer_cancel(d->loop, d->pause_timer);
			d->pause_timer = loop_timer_add(d->loop, delay, pause_timer_fired, d);
			log_failure_once(q, ZLOG_WARN, "rate limited by the homeserver; pausing all sends", strbuf_str(&reason),
					 it);
		} else {
			d->stats->retries++;
			delay = deliver_backoff_ms(it->attempts, d->cfg->retry_min_ms, d->cfg->retry_max_ms,
						   next_random01(d));
			schedule_retry(d, q, delay);
			char delay_text[32];
			snprintf(delay_text, sizeof delay_text, "%llums", (unsigned long long)delay);
			log_failure_once(q, ZLOG_WARN, "delivery failed; will retry", strbuf_str(&reason), it);
			log_kv(ZLOG_DEBUG, "retry scheduled", "room", q->room, "route", it->route, "txn", it->txn_id,
			       "key", it->event_key, "in", delay_text, NULL);
		}
	} else if (membership_not_joined(r)) {
		/* The room refused the bot, not the report: it waits at the head of the queue
		 * and goes out (same txn) once the bot is back in the room. */
		room_pause(q, strbuf_str(&reason));
		if (d->on_not_joined)
			d->on_not_joined(q->room, strbuf_str(&reason), d->on_not_joined_data);
	} else {
		kill_item(d, q, at, strbuf_str(&reason));
		pump(d, q);
	}
	strbuf_free(&reason);
}

static void queue_append(struct room_queue *q, struct outbox_item *item)
{
	if (q->n == q->cap) {
		if (q->head > 0) {
			/* The window is bounded: sliding it back is cheaper than growing. */
			memmove(q->items, q->items + q->head, (q->n - q->head) * sizeof *q->items);
			q->n -= q->head;
			q->head = 0;
		}
		if (q->n == q->cap) {
			q->cap = q->cap ? q->cap * 2 : 16;
			q->items = xrealloc(q->items, q->cap * sizeof *q->items);
		}
	}
	q->items[q->n++] = *item;
	if (deliver_is_answer(item))
		q->answers++;
	if (item->id > q->loaded_max)
		q->loaded_max = item->id;
	memset(item, 0, sizeof *item);
}

/* Tops the window up from the outbox once its reports ran low. */
static void refill(struct deliverer *d, struct room_queue *q)
{
	size_t have = q->n - q->head;
	size_t reports = have - q->answers;
	if (!q->spilled || reports > DELIVER_REFILL_AT || have >= DELIVER_MEMORY_MAX)
		return;
	size_t want = DELIVER_WINDOW - reports;
	if (want > DELIVER_MEMORY_MAX - have)
		want = DELIVER_MEMORY_MAX - have;
	struct outbox_item *items;
	size_t k;
	if (store_outbox_load_room(d->store, q->room, q->loaded_max, want, &items, &k) != 0)
		return; /* logged by the store; tried again at the next pump */
	for (size_t i = 0; i < k; i++)
		queue_append(q, &items[i]);
	free(items); /* the strings moved into the queue */
	if (k < want) {
		q->spilled = false; /* the store has nothing more for this room */
		q->spilled_count = 0;
	} else {
		q->spilled_count = q->spilled_count > k ? q->spilled_count - k : 0;
	}
}

/* Fills in the event id of the message a thread reply or an edit points at (it was queued
 * by txn, before that id existed). The target went earlier through this room's ordered
 * queue, so it is delivered by now, or dead. false: an edit of a message that never
 * arrived, which cannot be sent. */
static bool resolve_relation(struct deliverer *d, struct outbox_item *it)
{
	cJSON *content = cJSON_Parse(it->content_json);
	const char *txn = relations_pending_txn(content);
	if (!txn) {
		cJSON_Delete(content);
		return true;
	}
	char *event_id = store_sent_event_id(d->store, txn);
	if (!event_id)
		log_kv(ZLOG_WARN, "the message this one refers to was never delivered", "room", it->room, "route",
		       it->route, "txn", it->txn_id, "key", it->event_key, "target_txn", txn, NULL);
	bool ok = relations_resolve(content, event_id) == 0;
	free(event_id);
	if (ok) {
		char *json = cJSON_PrintUnformatted(content);
		free(it->content_json);
		it->content_json = xstrdup(json);
		cJSON_free(json);
	}
	cJSON_Delete(content);
	return ok;
}

static char *sent_event_id(const char *txn_id, void *data)
{
	struct room_queue *q = data;
	return store_sent_event_id(q->d->store, txn_id);
}

static const char *queued_after_next(size_t i, void *data)
{
	struct room_queue *q = data;
	return q->items[q->next + 1 + i].content_json;
}

/* Whether the next item is an edit that a newer edit waiting behind it in the window
 * replaces: under a rate limit, each send should carry news. Runs before every send; for
 * an item that is no silent edit it costs one substring search and allocates nothing. */
static bool next_superseded(struct room_queue *q)
{
	return supersede_is_stale(q->items[q->next].content_json, queued_after_next, q->n - q->next - 1,
				  sent_event_id, q);
}

static void pump(struct deliverer *d, struct room_queue *q)
{
	for (;;) {
		refill(d, q);
		/* In order, and never the item in flight: its answer still refers to it. */
		if (q->head < q->n && q->failed && !q->in_flight) {
			kill_item(d, q, q->head, q->failed);
			continue;
		}
		if (q->head == q->n || q->in_flight || q->retry_timer || !q->room_id || q->paused || d->shutting_down ||
		    d->held)
			return;
		if (d->paused_until_ms > loop_now_ms(d->loop))
			return;
		q->next = next_index(q);
		struct outbox_item *it = &q->items[q->next];
		if (d->on_skip && d->on_skip(it, d->on_skip_data)) {
			log_kv(ZLOG_INFO, "not posted: covered by the catch-up summary", "room", q->room, "route",
			       it->route, "txn", it->txn_id, "key", it->event_key, NULL);
			store_outbox_drop(d->store, it->id, clock_real_ms());
			queue_remove(q, q->next);
			continue;
		}
		if (next_superseded(q)) {
			log_kv(ZLOG_DEBUG, "not posted: superseded by a newer edit of the same message", "room", q->room,
			       "route", it->route, "txn", it->txn_id, "key", it->event_key, NULL);
			d->stats->superseded++;
			store_outbox_drop(d->store, it->id, clock_real_ms());
			queue_remove(q, q->next);
			continue;
		}
		/* The cheap test first: only replies and edits carry the key. */
		if (strstr(it->content_json, "\"" RELATIONS_TXN_KEY "\"") && !resolve_relation(d, it)) {
			kill_item(d, q, q->next, "an edit of a message that was never delivered");
			continue;
		}
		if (matrix_send(d->mc, q->room_id, "m.room.message", it->txn_id, it->content_json, on_send_done, q) !=
		    0) {
			/* Could not even start (out of handles): try again shortly rather than spin. */
			schedule_retry(d, q, (uint64_t)d->cfg->retry_min_ms);
			return;
		}
		q->in_flight = true;
		q->flight_id = it->id;
		return;
	}
}

void deliverer_enqueue(struct deliverer *d, struct outbox_item *item)
{
	struct room_queue *q = room_get(d, item->room);
	/* An item newer than the window goes to memory only while nothing waits in the
	 * store before it and the window has room (answers waiting behind reports take no
	 * report's place, up to DELIVER_MEMORY_MAX); otherwise a refill reads it later. An
	 * older id (a dead letter put back) is always kept: a refill would not see it. */
	size_t have = q->n - q->head;
	if (item->id > q->loaded_max &&
	    (q->spilled || have - q->answers >= DELIVER_WINDOW || have >= DELIVER_MEMORY_MAX)) {
		q->spilled = true;
		q->spilled_count++;
		store_item_clear(item);
		memset(item, 0, sizeof *item);
		return;
	}
	queue_append(q, item);
	pump(d, q);
}

void deliverer_room_ready(struct deliverer *d, const char *room, const char *room_id)
{
	struct room_queue *q = room_get(d, room);
	free(q->room_id);
	q->room_id = xstrdup(room_id);
	free(q->failed);
	q->failed = NULL;
	if (q->paused)
		log_kv(ZLOG_INFO, "room resumed: the bot is back in it", "room", q->room, NULL);
	free(q->paused);
	q->paused = NULL;
	pump(d, q);
}

void deliverer_room_failed(struct deliverer *d, const char *room, const char *reason)
{
	struct room_queue *q = room_get(d, room);
	free(q->failed);
	q->failed = xstrdup(reason);
	if (!q->in_flight)
		pump(d, q);
}

void deliverer_room_paused(struct deliverer *d, const char *room, const char *reason)
{
	room_pause(room_get(d, room), reason);
}

void deliverer_pause(struct deliverer *d)
{
	d->shutting_down = true;
}

size_t deliverer_queued(const struct deliverer *d)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n_rooms; i++)
		n += d->rooms[i]->n - d->rooms[i]->head + d->rooms[i]->spilled_count;
	return n;
}

size_t deliverer_in_memory(const struct deliverer *d)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n_rooms; i++)
		n += d->rooms[i]->n - d->rooms[i]->head;
	return n;
}

size_t deliverer_in_flight(const struct deliverer *d)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n_rooms; i++)
		n += d->rooms[i]->in_flight;
	return n;
}

static bool queue_has(const struct room_queue *q, int64_t id)
{
	for (size_t j = q->head; j < q->n; j++)
		if (q->items[j].id == id)
			return true;
	return false;
}

/* Takes up the room's outbox rows that memory lacks; returns how many. Does not pump. */
static size_t adopt_room(struct deliverer *d, struct room_queue *q)
{
	size_t adopted = 0;
	size_t depth = store_outbox_room_depth(d->store, q->room);
	/* Rows at or below the window's top that memory lacks (dead letters put back):
	 * that range holds little more than the window itself. */
	int64_t after = 0, top = q->loaded_max;
	while (after < top) {
		struct outbox_item *items;
		size_t k;
		if (store_outbox_load_room(d->store, q->room, after, 64, &items, &k) != 0)
			break;
		for (size_t i = 0; i < k; i++) {
			after = items[i].id;
			if (items[i].id <= top && !queue_has(q, items[i].id)) {
				queue_append(q, &items[i]);
				adopted++;
			} else {
				store_item_clear(&items[i]);
			}
		}
		free(items);
		if (k < 64)
			break;
	}
	/* The rest waits in the outbox; refills read it in order. */
	size_t in_memory = q->n - q->head;
	size_t known = q->spilled ? q->spilled_count : 0;
	if (depth > in_memory) {
		q->spilled = true;
		q->spilled_count = depth - in_memory;
		adopted += q->spilled_count > known ? q->spilled_count - known : 0;
	}
	return adopted;
}

size_t deliverer_adopt_outbox(struct deliverer *d)
{
	char **rooms;
	size_t n_rooms;
	if (store_outbox_rooms(d->store, &rooms, &n_rooms) != 0)
		return 0;
	size_t adopted = 0;
	for (size_t r = 0; r < n_rooms; r++) {
		struct room_queue *q = room_get(d, rooms[r]);
		adopted += adopt_room(d, q);
		free(rooms[r]);
		pump(d, q);
	}
	free(rooms);
	return adopted;
}

static int by_outbox_id(const void *a, const void *b)
{
	int64_t x = ((const struct outbox_item *)a)->id, y = ((const struct outbox_item *)b)->id;
	return (x > y) - (x < y);
}

/* Why forgetting is safe, and what "exactly once" means here. The lost batch was never
 * acknowledged to the broker (the bridge closes the MQTT session before any PUBACK is
 * written), so every report of it comes again, is rendered again, and is queued under
 * the same txn id (bridge_txn_id: route, action and event key, nothing that depends on
 * time or on the outbox id). A forgotten item may have gone out already, or be in flight
 * now (its answer is not recorded, see on_send_done): its second send, under that same
 * txn id, is answered by the homeserver with the event of the first (it keeps txn ids per
 * device for a day), so the room shows it once. The same holds for the items whose
 * delivery this batch had recorded: the rollback put their rows back, so they are sent
 * again under their txn ids and answered with the events they already made. */
size_t deliverer_batch_lost(struct deliverer *d, int64_t first_lost_id)
{
	size_t forgotten = 0;
	for (size_t r = 0; r < d->n_rooms; r++) {
		struct room_queue *q = d->rooms[r];
		size_t kept = q->head;
		for (size_t i = q->head; i < q->n; i++) {
			if (q->items[i].id < first_lost_id) {
				q->items[kept++] = q->items[i];
				continue;
			}
			if (deliver_is_answer(&q->items[i]))
				q->answers--;
			log_kv(ZLOG_DEBUG, "delivery forgotten: its batch was rolled back", "room", q->room, "txn",
			       q->items[i].txn_id, NULL);
			store_item_clear(&q->items[i]);
			forgotten++;
		}
		q->n = kept;
		if (q->head == q->n)
			q->head = q->n = 0;
		if (q->in_flight && q->flight_id >= first_lost_id)
			q->flight_lost = true;
		/* Every row below the lost ones was read in before any of them (ids grow, and
		 * refills read in id order), so the window's top is the last id kept. */
		if (q->loaded_max >= first_lost_id)
			q->loaded_max = first_lost_id - 1;
		q->spilled_count = 0; /* recounted by adopt_room, without the lost rows */
		adopt_room(d, q);
		/* Taken back items were appended: order the window by id again, so an edit or a
		 * thread reply goes after the message it points at. */
		qsort(q->items + q->head, q->n - q->head, sizeof *q->items, by_outbox_id);
		pump(d, q);
	}
	return forgotten;
}

bool deliverer_has_item(const struct deliverer *d, int64_t id)
{
	for (size_t i = 0; i < d->n_rooms; i++)
		for (size_t j = d->rooms[i]->head; j < d->rooms[i]->n; j++)
			if (d->rooms[i]->items[j].id == id)
				return true;
	return false;
}
