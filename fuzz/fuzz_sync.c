/* fuzz_sync: libFuzzer target for what a homeserver answers: arbitrary bytes as a /sync
 * body walked by sync_walk_batch, and as a failure marker read by rebuild_marker_read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "rebuild.h"
#include "sync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const rooms[] = {"!a:example.org", "!b:example.org"};
static const char *const chatops_types[] = {"m.reaction", "m.room.redaction", "m.room.message",
					    "m.room.power_levels", "org.example.*"};

struct walk_state {
	const struct sync_walk *w;
	size_t events, gaps, invites;
	size_t stop_after;   /* stop the walk after this many events (0: never) */
	bool drop_b;         /* a reload drops !b during its first timeline event */
	bool b_dropped;
};

static bool glob(const char *pat, const char *s)
{
	if (*pat == '\0')
		return *s == '\0';
	if (*pat == '*')
		return glob(pat + 1, s) || (*s && glob(pat, s + 1));
	return *pat == *s && glob(pat + 1, s + 1);
}

static bool room_wanted(const char *room_id, void *data)
{
	const struct walk_state *st = data;
	if (st->b_dropped && strcmp(room_id, rooms[1]) == 0)
		return false;
	return strcmp(room_id, rooms[0]) == 0 || strcmp(room_id, rooms[1]) == 0;
}

/* What the syncer promises every consumer, whatever the homeserver sent. */
static bool on_event(const struct sync_event *ev, void *data)
{
	struct walk_state *st = data;
	/* room_wanted is false for a dropped !b, so this also catches a delivery after the drop. */
	if (!ev->room_id || !room_wanted(ev->room_id, st) || !ev->type || !ev->event)
		abort();
	if (st->w->n_types) {
		bool ok = false;
		for (size_t i = 0; i < st->w->n_types && !ok; i++)
			ok = glob(st->w->types[i], ev->type);
		if (!ok)
			abort(); /* a type nobody asked for */
	}
	/* After a fresh start only state is handed over, all of it as snapshot. (A "state"
	 * section event without state_key is handed over as it is, state_key NULL.) */
	if (st->w->fresh && !ev->snapshot)
		abort();
	/* Touch every string: a dangling pointer shows up under ASan here. */
	size_t n = strlen(ev->room_id) + strlen(ev->type);
	n += ev->event_id ? strlen(ev->event_id) : 0;
	n += ev->sender ? strlen(ev->sender) : 0;
	n += ev->state_key ? strlen(ev->state_key) : 0;
	(void)n;
	st->events++;
	/* room_wanted already says no to !b once dropped; the walk asks it again after every
	 * timeline event (snapshot false outside a fresh start), so nothing of !b follows. */
	if (st->drop_b && strcmp(ev->room_id, rooms[1]) == 0 && !ev->snapshot)
		st->b_dropped = true;
	return st->stop_after == 0 || st->events < st->stop_after;
}

static bool on_gap(const char *room_id, const char *prev_batch, void *data)
{
	struct walk_state *st = data;
	if (!room_wanted(room_id, st))
		abort();
	if (prev_batch)
		(void)strlen(prev_batch);
	st->gaps++;
	return true;
}

/* Invites come last, for any room, and never after the walk was told to stop. */
static bool on_invite(const char *room_id, const cJSON *invite_state, void *data)
{
	struct walk_state *st = data;
	if (st->stop_after && st->events >= st->stop_after)
		abort();
	(void)strlen(room_id);
	if (invite_state && !cJSON_IsArray(invite_state))
		abort();
	st->invites++;
	return true;
}

static void walk(const cJSON *body, const char *const *types, size_t n_types, bool fresh, bool lost,
		 size_t stop_after, bool drop_b)
{
	struct sync_walk w = {
		.types = types,
		.n_types = n_types,
		.fresh = fresh,
		.lost_position = lost,
		.room_wanted = room_wanted,
		.on_event = on_event,
		.on_gap = on_gap,
		.on_invite = on_invite,
	};
	struct walk_state st = {.w = &w, .stop_after = stop_after, .drop_b = drop_b};
	w.data = &st;
	const char *next = sync_walk_batch(body, &w);
	const cJSON *nb = cJSON_GetObjectItemCaseSensitive(body, "next_batch");
	bool is_answer = cJSON_IsString(nb) && nb->valuestring[0];
	if (!is_answer && (next || st.events || st.gaps || st.invites))
		abort(); /* not a /sync answer: nothing may have been handed over */
	if (is_answer && next != nb->valuestring)
		abort();
	if (stop_after && st.events > stop_after)
		abort(); /* a stopped walk must stay stopped */
	if (!lost && fresh && st.gaps)
		abort(); /* a fresh start without a lost token reports no gaps */
}

/* Whatever a marker holds, a usable one obeys the ranges rebuild.h gives, and a root
 * marker that reads is also a usable edit marker with the same progress. */
static void read_marker(const cJSON *marker)
{
	struct rebuild_marker root, edit;
	const char *why_root = rebuild_marker_read(marker, true, &root);
	const char *why_edit = rebuild_marker_read(marker, false, &edit);
	if (!why_edit) {
		if (edit.count < 1 || edit.count > 2147483647LL || edit.recovered_ms < 0 || edit.txn ||
		    edit.opened_ms != 0)
			abort();
	} else if (!*why_edit || edit.count || edit.txn) {
		abort();
	}
	if (!why_root) {
		if (why_edit || root.count != edit.count || root.recovered_ms != edit.recovered_ms ||
		    root.escalated != edit.escalated)
			abort();
		if (!root.txn || !*root.txn || !root.route || !*root.route || !root.key || !*root.key ||
		    !root.thread_key || !*root.thread_key || root.opened_ms < 0)
			abort();
		if (strlen(root.txn) > 4096 || strlen(root.route) > 4096 || strlen(root.key) > 4096 ||
		    strlen(root.thread_key) > 4096)
			abort();
	} else if (!*why_root || root.txn || root.count) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Warnings about bad input are expected here; thousands of lines would hide findings. */
	log_set_level(ZLOG_ERROR);
	cJSON *body = cJSON_ParseWithLength((const char *)data, size);
	if (!body)
		return 0;
	size_t n_chatops = sizeof chatops_types / sizeof chatops_types[0];
	/* A resumed poll, the chatops' types. */
	walk(body, chatops_types, n_chatops, false, false, 0, false);
	/* A fresh start after a rejected token, every type. */
	walk(body, NULL, 0, true, true, 0, false);
	/* sync_free from the second event's callback; a reload dropping !b mid-batch. */
	walk(body, NULL, 0, false, false, 2, false);
	walk(body, chatops_types, n_chatops, false, false, 0, true);

	/* rebuild: the body as a marker itself, as a root's content and as an edit's. */
	read_marker(body);
	read_marker(cJSON_GetObjectItemCaseSensitive(body, REBUILD_MARKER_KEY));
	const cJSON *nc = cJSON_GetObjectItemCaseSensitive(body, "m.new_content");
	read_marker(cJSON_GetObjectItemCaseSensitive(nc, REBUILD_MARKER_KEY));
	/* And every event of a /messages chunk, as rebuild pages through one. */
	const cJSON *ev;
	cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(body, "chunk"))
	{
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
		read_marker(cJSON_GetObjectItemCaseSensitive(content, REBUILD_MARKER_KEY));
		nc = cJSON_GetObjectItemCaseSensitive(content, "m.new_content");
		read_marker(cJSON_GetObjectItemCaseSensitive(nc, REBUILD_MARKER_KEY));
	}
	cJSON_Delete(body);
	return 0;
}
