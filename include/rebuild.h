/* rebuild: finds the bridge's own failure messages, their newest edits and the claim
 * reactions on them in the rooms' history, for when state_dir was lost. Reads only; the
 * caller (chatops) writes what it finds into the store. */
#ifndef ZMB_REBUILD_H
#define ZMB_REBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "loop.h"

/* The private marker every failure message of the bridge carries in its content (the
 * root), and inside m.new_content of each of its edits:
 *   "zmb.failure": {"v": 1, "txn": "...", "route": "...", "key": "...", "thread_key": "...",
 *                   "opened_ms": int, "count": int, "recovered_ms": int (0: not recovered),
 *                   "escalated": int bit mask} */
#define REBUILD_MARKER_KEY "zmb.failure"

/* A reaction by someone other than the bridge on a failure message, still live. */
struct rebuild_reaction {
	char *event_id; /* the reaction event */
	char *sender;
	char *key;      /* the emoji */
	int64_t ts_ms;  /* its origin_server_ts */
};

struct rebuild_failure {
	char *room_id;
	char *event_id;     /* the root message */
	int64_t ts_ms;      /* the root's origin_server_ts */
	/* From the root's marker: */
	char *txn;
	char *route;
	char *key;
	char *thread_key;
	int64_t opened_ms;
	/* From the newest edit by the bridge whose marker is valid, else from the root: */
	int64_t count;
	int64_t recovered_ms;
	unsigned escalated;
	char *content_json;      /* the ROOT's content, as posted (marker and relations included) */
	char *edit_event_id;     /* the edit count..escalated came from; NULL: none */
	char *edit_content_json; /* that edit's m.new_content; NULL: none */
	int64_t edited_ms;       /* that edit's origin_server_ts; 0: none */
	/* Oldest first (the order they were sent in). */
	struct rebuild_reaction *reactions;
	size_t n_reactions;
};

struct rebuild_room {
	char *room_id;
	/* true: the room's history was read to its start or to a limit (max_events,
	 * max_age): what it holds is in failures. false: reason says why not, and none of
	 * the room's failures are in the result (half a room's claims would look like
	 * unclaimed failures). */
	bool complete;
	bool truncated;        /* complete, but stopped at max_events, max_age or the page
				* limit (max_events / 100 pages of /messages, empty ones included) */
	char *reason;          /* NULL when complete */
	size_t events_scanned; /* bridge messages read from the history */
	size_t requests;       /* HTTP requests made for the room, retries included */
};

struct rebuild_result {
	/* Rooms in the order given, each room's failures oldest first. */
	struct rebuild_failure *failures;
	size_t n_failures;
	struct rebuild_room *rooms; /* one per distinct room given, same order */
	size_t n_rooms;
};

void rebuild_result_free(struct rebuild_result *res);

/* Zero fields take the defaults. */
struct rebuild_options {
	int max_events;        /* bridge messages read per room, at most; default 10000. Also
				* bounds the /messages pages per room to max_events / 100 (at
				* least 1): a page may come back empty but with an end token */
	int64_t max_age_ms;    /* stop at messages older than now - max_age_ms; default 30 days */
	int64_t now_ms;        /* "now" for max_age (Unix ms); default the real clock, which
				* is what origin_server_ts is measured in (not a test clock) */
	int retry_min_ms;      /* first back-off; default cfg->retry_min_ms, else 1000 */
	int retry_max_ms;      /* back-off cap; default cfg->retry_max_ms, else 60000 */
	int max_attempts;      /* tries per request (transport, 5xx, 429); default 5 */
	int relations_limit;   /* relations page size asked for; default 100 */
};

struct rebuild;

/* Called once, from the loop, when every room is done (never from rebuild_start). The
 * callee owns result (free with rebuild_result_free). rebuild_free is allowed inside. */
typedef void (*rebuild_done_fn)(struct rebuild_result *result, void *data);

/* Starts scanning room_ids (room ids "!x:server"; anything else is reported as a failed
 * room; duplicates are scanned once) for the failure messages sent by user_id, the
 * bridge's own Matrix id. Rooms are scanned side by side. The rebuild has its own Matrix
 * client built from cfg (which must outlive it), so rebuild_free can drop requests in
 * flight. Lists and strings are copied; opt may be NULL. Returns NULL (logged) if the
 * client cannot be created or user_id is missing; done is then never called. */
struct rebuild *rebuild_start(struct loop *loop, const struct config_matrix *cfg, const char *user_id,
			      const char *const *room_ids, size_t n_rooms, const struct rebuild_options *opt,
			      rebuild_done_fn done, void *data);

/* Stops and frees. Requests in flight are dropped; done is not called afterwards. Safe
 * from the done callback and after it. NULL is fine. */
void rebuild_free(struct rebuild *rb);

/* The filter sent as /messages?filter= (exposed for tests). Caller frees. */
char *rebuild_messages_filter_json(const char *user_id);

/* One marker as rebuild reads it. Strings point into the marker (not owned). */
struct rebuild_marker {
	const char *txn, *route, *key, *thread_key; /* root markers only, else NULL */
	int64_t opened_ms;                          /* root markers only, else 0 */
	int64_t count;                              /* 1 .. 2^31-1 */
	int64_t recovered_ms;                       /* 0 .. 2^53-1; 0: not recovered */
	unsigned escalated;                         /* 0 .. 2^31-1 */
};

/* Reads the REBUILD_MARKER_KEY value of a root's content (root true: every field is
 * required) or of an edit's m.new_content (root false: v, count, recovered_ms and
 * escalated only). Strings must be non-empty and at most 4096 bytes, numbers integral
 * and in range. Returns NULL with *out filled, or a static reason why the marker is
 * unusable with *out zeroed. Pure (exposed for tests and fuzzing). */
const char *rebuild_marker_read(const cJSON *marker, bool root, struct rebuild_marker *out);

#endif
