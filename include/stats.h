/* stats: the bridge's counters and gauges, in one plain struct the bridge updates and
 * the metrics endpoint renders (Prometheus text format). No I/O, no clock. */
#ifndef ZMB_STATS_H
#define ZMB_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* Upper bounds (seconds) of the delivery latency histogram: report accepted -> 200. */
#define STATS_LATENCY_BUCKETS 12
extern const double stats_latency_bounds[STATS_LATENCY_BUCKETS];

struct route_stats {
	char *name;
	uint64_t routed;       /* matched and queued */
	uint64_t deduplicated; /* matched but already accepted before */
	uint64_t posted;       /* the homeserver answered 200 */
	uint64_t failed;       /* moved to dead letters */
};

/* A configured room, as the bot stands in it. */
struct room_stats {
	char *room;        /* as configured: id or alias */
	bool joined;       /* the bot is in the room */
	uint64_t removals; /* times the bot found itself kicked or banned out of it */
	bool encrypted;          /* the room has m.room.encryption */
	bool encrypted_refused;  /* ...and its reports go to dead letters (not in post_unencrypted) */
};

/* Build details (details.h): the bridge's own requests to Zuul and the log server, and the
 * report edits they led to. */
struct stats_details {
	uint64_t fetches_ok;     /* files and build records fetched (HTTP 200, within the caps) */
	uint64_t fetches_failed; /* fetches that ended without them: HTTP error, timeout, cap */
	uint64_t refused;        /* URLs not requested: host not in details.hosts, not a URL to
				  * fetch, or the line of waiting fetches full */
	uint64_t edits;          /* reports edited to show what was fetched */
};

struct stats {
	uint64_t received;     /* MQTT messages */
	uint64_t rejected;     /* not a Zuul report */
	uint64_t filtered;     /* a Zuul report no route wanted */
	uint64_t retries;      /* transient delivery failures retried */
	uint64_t rate_limited; /* 429 answers */
	uint64_t superseded;   /* edits not sent: a newer edit of the same message was queued */
	uint64_t sync_oversized;      /* /sync answers over the size cap (sync.c asks for less) */
	uint64_t sync_empty_backoffs; /* /sync polls held back: long polls answered at once with nothing */
	uint64_t command_answers_dropped; /* room commands over their budget: not answered */
	struct stats_details details;
	struct route_stats *routes;
	size_t n_routes;
	struct room_stats *rooms;
	size_t n_rooms;
	uint64_t latency_buckets[STATS_LATENCY_BUCKETS]; /* cumulative: [i] counts observations <= bound i */
	uint64_t latency_count;
	double latency_sum;
	/* Gauges, set by the bridge when they change. */
	uint64_t outbox_depth;
	uint64_t state_db_bytes; /* state.db's size, free pages included; set each retention step */
	bool mqtt_connected;
	bool matrix_reachable;  /* whoami answered and the last request reached the homeserver */
	uint64_t open_claims;   /* chatops; 0 until claims exist */
	int64_t last_report_ms; /* wall clock of the last accepted report, 0: none yet */
	const char *state_db_problem; /* why reports are refused ("state database: disk full"), NULL */
	int64_t started_ms;
	/* Actions on Zuul (issue #17), one per acting command or reaction, by outcome:
	 * [0] accepted, [1] refused by Zuul, [2] Zuul unreachable, [3] denied by the bridge. */
	uint64_t zuul_actions[4];
};

/* The counters of route `name`, added on first use. The pointer stays valid until
 * the next stats_route call that adds a route. */
struct route_stats *stats_route(struct stats *s, const char *name);
/* The standing of room `room`, added (not joined) on first use; the pointer stays valid
 * until the next stats_room call that adds a room. */
struct room_stats *stats_room(struct stats *s, const char *room);
void stats_observe_latency(struct stats *s, double seconds);
/* Appends every metric in Prometheus text exposition format 0.0.4, each with # HELP
 * and # TYPE; names prefixed zmb_; route names escaped as label values. */
void stats_render_prometheus(const struct stats *s, struct strbuf *out);
/* The /healthz JSON body: {"status":"ok"|"degraded","mqtt":"connected"|"disconnected",
 * "matrix":"reachable"|"unreachable","outbox":N,"last_report":"ISO8601"|null,
 * "rooms_not_joined":["#room:hs",...]}. A room the bot is not in does not change the
 * status: a restart would not bring it back, an invite does. */
void stats_render_health(const struct stats *s, struct strbuf *out);
/* With state_db_problem set the body also says "reason":"...", and the status is 503:
 * new reports are refused. */
/* 200 when MQTT is connected, the homeserver reachable and the state database takes
 * reports, else 503. */
int stats_health_status(const struct stats *s);
void stats_clear(struct stats *s);

#endif
