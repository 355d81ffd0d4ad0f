/* stats: the bridge's counters rendered as Prometheus text (exposition format 0.0.4)
 * and as the /healthz JSON body. Pure: no I/O, no clock; the bridge sets the fields. */
#include "stats.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double stats_latency_bounds[STATS_LATENCY_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

struct route_stats *stats_route(struct stats *s, const char *name)
{
	for (size_t i = 0; i < s->n_routes; i++)
		if (strcmp(s->routes[i].name, name) == 0)
			return &s->routes[i];
	s->routes = xrealloc(s->routes, (s->n_routes + 1) * sizeof(*s->routes));
	struct route_stats *r = &s->routes[s->n_routes++];
	*r = (struct route_stats){.name = xstrdup(name)};
	return r;
}

struct room_stats *stats_room(struct stats *s, const char *room)
{
	for (size_t i = 0; i < s->n_rooms; i++)
		if (strcmp(s->rooms[i].room, room) == 0)
			return &s->rooms[i];
	s->rooms = xrealloc(s->rooms, (s->n_rooms + 1) * sizeof(*s->rooms));
	struct room_stats *r = &s->rooms[s->n_rooms++];
	*r = (struct room_stats){.room = xstrdup(room)};
	return r;
}

/* Buckets are kept cumulative (each counts observations <= its bound), so rendering
 * prints them as they are. A negative duration (wall clock stepped back between
 * accept and delivery) counts as 0 rather than vanishing; NaN is not a duration. */
void stats_observe_latency(struct stats *s, double seconds)
{
	if (isnan(seconds))
		return;
	if (seconds < 0)
		seconds = 0;
	for (size_t i = 0; i < STATS_LATENCY_BUCKETS; i++)
		if (seconds <= stats_latency_bounds[i])
			s->latency_buckets[i]++;
	s->latency_count++;
	s->latency_sum += seconds;
}

/* The shortest of %.15g / %.17g that reads back as the same double, so 0.1 prints
 * as 0.1 and not 0.10000000000000001. Infinities in the Prometheus spelling. */
static void put_float(struct strbuf *out, double v)
{
	if (isinf(v)) {
		strbuf_puts(out, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (isnan(v)) {
		strbuf_puts(out, "NaN");
		return;
	}
	char buf[40];
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	strbuf_puts(out, buf);
}

/* Exposition format label value: backslash, double quote and line feed escaped. */
static void put_label_value(struct strbuf *out, const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '\\')
			strbuf_puts(out, "\\\\");
		else if (*p == '"')
			strbuf_puts(out, "\\\"");
		else if (*p == '\n')
			strbuf_puts(out, "\\n");
		else
			strbuf_putc(out, *p);
	}
}

/* A JSON string's characters: quote, backslash and control characters escaped. */
static void put_json_chars(struct strbuf *out, const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\')
			strbuf_printf(out, "\\%c", *p);
		else if (*p < 0x20)
			strbuf_printf(out, "\\u%04x", *p);
		else
			strbuf_putc(out, (char)*p);
	}
}

static void put_family(struct strbuf *out, const char *name, const char *type, const char *help)
{
	strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_counter(struct strbuf *out, const char *name, const char *help, uint64_t v)
{
	put_family(out, name, "counter", help);
	strbuf_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void put_gauge(struct strbuf *out, const char *name, const char *help, double v)
{
	put_family(out, name, "gauge", help);
	strbuf_printf(out, "%s ", name);
	put_float(out, v);
	strbuf_putc(out, '\n');
}

enum route_field { R_ROUTED, R_DEDUP, R_POSTED, R_FAILED };

static void put_route_counter(struct strbuf *out, const struct stats *s, const char *name,
			      const char *help, enum route_field f)
{
	put_family(out, name, "counter", help);
	for (size_t i = 0; i < s->n_routes; i++) {
		const struct route_stats *r = &s->routes[i];
		uint64_t v = f == R_ROUTED ? r->routed : f == R_DEDUP ? r->deduplicated
			   : f == R_POSTED ? r->posted : r->failed;
		strbuf_printf(out, "%s{route=\"", name);
		put_label_value(out, r->name ? r->name : "");
		strbuf_printf(out, "\"} %" PRIu64 "\n", v);
	}
}

static void put_room_metrics(struct strbuf *out, const struct stats *s)
{
	put_family(out, "zmb_room_joined", "gauge",
		   "1 when the bot is in the room, 0 while it is not (kicked, banned, not invited).");
	for (size_t i = 0; i < s->n_rooms; i++) {
		strbuf_puts(out, "zmb_room_joined{room=\"");
		put_label_value(out, s->rooms[i].room);
		strbuf_printf(out, "\"} %d\n", s->rooms[i].joined ? 1 : 0);
	}
	put_family(out, "zmb_room_encrypted", "gauge",
		   "1 when the room is encrypted: the bridge cannot encrypt, so its reports there are dead letters "
		   "unless matrix.post_unencrypted names the room.");
	for (size_t i = 0; i < s->n_rooms; i++) {
		strbuf_puts(out, "zmb_room_encrypted{room=\"");
		put_label_value(out, s->rooms[i].room);
		strbuf_printf(out, "\"} %d\n", s->rooms[i].encrypted ? 1 : 0);
	}
	put_family(out, "zmb_room_removals_total", "counter", "Times the bot was kicked or banned from the room.");
	for (size_t i = 0; i < s->n_rooms; i++) {
		strbuf_puts(out, "zmb_room_removals_total{room=\"");
		put_label_value(out, s->rooms[i].room);
		strbuf_printf(out, "\"} %" PRIu64 "\n", s->rooms[i].removals);
	}
}

/* Build details: the bridge's own requests to Zuul and the log server. */
static void put_details_metrics(struct strbuf *out, const struct stats_details *d)
{
	const char *f = "zmb_details_fetches_total";
	put_family(out, f, "counter",
		   "Build records and job output files fetched for build details: ok (HTTP 200 within the caps) or "
		   "failed (HTTP error, timeout, size cap).");
	strbuf_printf(out, "%s{outcome=\"ok\"} %" PRIu64 "\n", f, d->fetches_ok);
	strbuf_printf(out, "%s{outcome=\"failed\"} %" PRIu64 "\n", f, d->fetches_failed);
	put_counter(out, "zmb_details_refused_urls_total",
		    "Build detail URLs not requested: host not in details.hosts, not a URL to fetch, or too many waiting.",
		    d->refused);
	put_counter(out, "zmb_details_edits_total", "Reports edited to show their builds' details once fetched.",
		    d->edits);
}

/* Milliseconds since the epoch as seconds; 0 stays 0 ("never"). */
static double ms_to_s(int64_t ms)
{
	return (double)ms / 1000.0;
}

void stats_render_prometheus(const struct stats *s, struct strbuf *out)
{
	put_counter(out, "zmb_reports_received_total", "MQTT messages received.", s->received);
	put_counter(out, "zmb_reports_rejected_total", "MQTT messages that were not a Zuul report.",
		    s->rejected);
	put_counter(out, "zmb_reports_filtered_total", "Zuul reports no route wanted.", s->filtered);
	put_route_counter(out, s, "zmb_route_reports_routed_total",
			  "Reports a route matched and queued for delivery.", R_ROUTED);
	put_route_counter(out, s, "zmb_route_reports_deduplicated_total",
			  "Reports a route matched that were already accepted before.", R_DEDUP);
	put_route_counter(out, s, "zmb_route_reports_posted_total",
			  "Messages the homeserver accepted (200).", R_POSTED);
	put_route_counter(out, s, "zmb_route_reports_failed_total",
			  "Messages given up on and moved to dead letters.", R_FAILED);
	put_counter(out, "zmb_delivery_retries_total", "Transient delivery failures that were retried.",
		    s->retries);
	put_counter(out, "zmb_delivery_rate_limited_total", "Homeserver answers 429 (rate limited).",
		    s->rate_limited);
	put_counter(out, "zmb_edits_superseded_total",
		    "Edits not sent because a newer edit of the same message was queued behind them.", s->superseded);
	put_counter(out, "zmb_command_answers_dropped_total",
		    "Room commands not answered: their sender or room had used up the answers of the minute.",
		    s->command_answers_dropped);

	put_details_metrics(out, &s->details);

	const char *h = "zmb_delivery_latency_seconds";
	put_family(out, h, "histogram", "Time from accepting a report to the homeserver's 200.");
	for (size_t i = 0; i < STATS_LATENCY_BUCKETS; i++) {
		char le[32];
		snprintf(le, sizeof(le), "%g", stats_latency_bounds[i]);
		strbuf_printf(out, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", h, le, s->latency_buckets[i]);
	}
	strbuf_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", h, s->latency_count);
	strbuf_printf(out, "%s_sum ", h);
	put_float(out, s->latency_sum);
	strbuf_printf(out, "\n%s_count %" PRIu64 "\n", h, s->latency_count);

	put_gauge(out, "zmb_outbox_depth", "Messages waiting in the outbox.", (double)s->outbox_depth);
	put_gauge(out, "zmb_state_db_bytes", "Size of state.db in bytes, free pages included.",
		  (double)s->state_db_bytes);
	put_gauge(out, "zmb_mqtt_connected", "1 when the MQTT session is up.", s->mqtt_connected ? 1 : 0);
	put_gauge(out, "zmb_matrix_reachable", "1 when the homeserver answered the last request.",
		  s->matrix_reachable ? 1 : 0);
	put_room_metrics(out, s);
	put_gauge(out, "zmb_open_claims", "Failures claimed and not yet resolved.", (double)s->open_claims);
	put_counter(out, "zmb_sync_oversized_total",
		    "/sync answers over the 8 MiB size cap; each time the bridge asked for fewer events, skipping older ones.",
		    s->sync_oversized);
	put_counter(out, "zmb_sync_empty_backoffs_total",
		    "/sync polls held back because the homeserver answered long polls at once with nothing.",
		    s->sync_empty_backoffs);
	put_gauge(out, "zmb_last_report_timestamp_seconds",
		  "Unix time of the last accepted report, 0 before the first.", ms_to_s(s->last_report_ms));
	put_gauge(out, "zmb_start_time_seconds", "Unix time the bridge started.", ms_to_s(s->started_ms));
	/* Actions on Zuul (issue #17). */
	static const char *const outcomes[] = {"accepted", "refused", "unreachable", "denied"};
	put_family(out, "zmb_zuul_actions_total", "counter",
		   "Actions on Zuul asked for in the rooms (recheck, dequeue, autohold...), by outcome.");
	for (size_t i = 0; i < 4; i++)
		strbuf_printf(out, "zmb_zuul_actions_total{outcome=\"%s\"} %" PRIu64 "\n", outcomes[i], s->zuul_actions[i]);
}

/* ,"key":[rooms...]: the rooms the bot is not in, or (encrypted) those whose reports are
 * refused because the room is encrypted. */
static void put_room_list(struct strbuf *out, const char *key, const struct stats *s, bool encrypted)
{
	strbuf_printf(out, ",\"%s\":[", key);
	bool first = true;
	for (size_t i = 0; i < s->n_rooms; i++) {
		if (encrypted ? !s->rooms[i].encrypted_refused : s->rooms[i].joined)
			continue;
		strbuf_puts(out, first ? "\"" : ",\"");
		put_json_chars(out, s->rooms[i].room);
		strbuf_putc(out, '"');
		first = false;
	}
	strbuf_putc(out, ']');
}

void stats_render_health(const struct stats *s, struct strbuf *out)
{
	strbuf_printf(out, "{\"status\":\"%s\",\"mqtt\":\"%s\",\"matrix\":\"%s\",\"outbox\":%" PRIu64
			   ",\"last_report\":",
		      stats_health_status(s) == 200 ? "ok" : "degraded",
		      s->mqtt_connected ? "connected" : "disconnected",
		      s->matrix_reachable ? "reachable" : "unreachable", s->outbox_depth);
	struct tm tm;
	time_t secs = (time_t)(s->last_report_ms / 1000);
	if (s->last_report_ms > 0 && gmtime_r(&secs, &tm)) {
		char ts[32];
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		strbuf_printf(out, "\"%s.%03dZ\"", ts, (int)(s->last_report_ms % 1000));
	} else {
		strbuf_puts(out, "null");
	}
	put_room_list(out, "rooms_not_joined", s, false);
	put_room_list(out, "rooms_encrypted", s, true);
	if (s->state_db_problem) {
		strbuf_puts(out, ",\"reason\":\"");
		put_json_chars(out, s->state_db_problem);
		strbuf_putc(out, '"');
	}
	strbuf_puts(out, "}\n");
}

int stats_health_status(const struct stats *s)
{
	return s->mqtt_connected && s->matrix_reachable && !s->state_db_problem ? 200 : 503;
}

void stats_clear(struct stats *s)
{
	for (size_t i = 0; i < s->n_routes; i++)
		free(s->routes[i].name);
	free(s->routes);
	for (size_t i = 0; i < s->n_rooms; i++)
		free(s->rooms[i].room);
	free(s->rooms);
	*s = (struct stats){0};
}
