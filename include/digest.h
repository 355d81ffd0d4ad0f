/* digest: the scheduled daily digest of open, unclaimed failures and the catch-up summary of
 * failures that recovered while the bridge was away; the schedule, the plan and the content.
 * Pure: no I/O, no clock (every function takes the instant it needs), no globals. The bridge
 * owns the timers, reads the store, and posts what these functions return.
 *
 * Semantics
 * ---------
 * Schedule: digest_next_at() is the first instant strictly after `after` at which the wall
 *   clock in the zone reads the digest's minute. On a spring-forward day whose gap swallows
 *   that minute (02:30 in Europe/Berlin on the last Sunday of March), the digest is due at the
 *   first instant after the gap (03:00 CEST), as cron does: the day still gets its digest, as
 *   early as the clock allows. On a fall-back day on which the minute occurs twice, only the
 *   first occurrence counts: one digest a day. Zone names go to the system tz database; an
 *   unknown name behaves like UTC (config.c rejects those with rotation_zone_exists()).
 * Local time goes through rotation.h (rotation_tz_enter, rotation_local_to_utc with
 *   ROTATION_GAP_TRANSITION): TZ is set for the duration of a call and restored (unset stays
 *   unset) before it returns, which is safe only because the daemon is single-threaded.
 *
 * Daily digest: NULL when there is nothing to list (nothing is posted). Else an m.notice with
 *   "m.mentions": {} (a digest informs, it does not page; owners are plain ids, never pills),
 *   a heading with the date of now_ms in the digest's zone and one line per failure, oldest
 *   first (ties: input order). A line links to the failure's message (matrix.to, ids
 *   percent-encoded) when room_id and event_id are both set and at most 255 bytes each.
 *
 * Catch-up: digest_catch_up_plan() decides, over the reports that arrived while the bridge
 *   was away (in arrival order), which are summarised: a failure-like report (failure,
 *   merge-conflict, merge-failure, config-error) is summarised when a success of the same
 *   (route, project, branch, pipeline) arrives later; a success is summarised when it is the
 *   first success after one or more such failures of its key (the "it recovered" part). A
 *   second success in a row, a success with no failure before it, a failure with no later
 *   success, and every other action (start, dequeue, ...) are not summarised: the bridge posts
 *   those one by one as usual. NULL fields compare equal to "" (and to each other).
 *   digest_catch_up_content_new() renders the summarised reports as one notice, one line per
 *   (route, project, branch, pipeline) in the order of their first summarised failure. Routes
 *   are not shown: the bridge calls it once per room with that room's reports (the plan may be
 *   computed over all of them, since its key includes the route).
 *
 * Size: both contents list at most DIGEST_LINES_MAX lines and stop earlier when body or
 *   formatted_body would exceed DIGEST_BYTES_MAX bytes; the rest is "... and N more.". A
 *   `what` longer than DIGEST_WHAT_MAX bytes is cut (at a UTF-8 boundary, with "…"); at most
 *   DIGEST_OWNERS_MAX owners are named per line ("and N more"). Control characters in any
 *   shown string become spaces, so a line stays one line. Everything shown is HTML-escaped in
 *   formatted_body.
 */
#ifndef ZMB_DIGEST_H
#define ZMB_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

#define DIGEST_LINES_MAX 50
#define DIGEST_BYTES_MAX 32000
#define DIGEST_WHAT_MAX 300
#define DIGEST_OWNERS_MAX 5

/* The first instant strictly after `after` at local wall time `minute` (minutes after
 * midnight, 0..1439) in `timezone` (a tz database name; NULL or "" is UTC). Returns 0 when
 * minute is out of range (config's -1: no digest). See "Schedule" above for DST. */
time_t digest_next_at(int minute, const char *timezone, time_t after);

/* Writes t in the zone for humans, "Sun 29 Mar 2026 03:00 CEST" (English whatever the
 * locale). Truncates like snprintf; 40 bytes always suffice. Returns buf. */
char *digest_format_time(time_t t, const char *timezone, char *buf, size_t buflen);

/* Only the date, "Sun 29 Mar 2026", of t in the zone. Same rules. */
char *digest_format_date(time_t t, const char *timezone, char *buf, size_t buflen);

/* One open, unclaimed failure for the daily digest. Strings are not copied. */
struct digest_failure {
	const char *what;          /* "org/repo (main) periodic-daily: job-a, job-b"; NULL shows "?" */
	const char *room_id;       /* the room its message is in */
	const char *event_id;      /* its message; NULL: no link */
	int64_t opened_ms;         /* first reported */
	int64_t count;             /* how many times it failed; > 1 is shown */
	const char *const *owners; /* Matrix user ids, shown as plain text */
	size_t n_owners;           /* may be 0: "no owner" */
};

/* The daily digest's message content, caller frees (cJSON_Delete); NULL when n == 0.
 * body / formatted_body, e.g. for one failure:
 *   "Daily digest, Tue 10 Mar 2026: 1 open failure nobody has claimed\n"
 *   "- org/repo (main) periodic-daily: job-a: open 3d 4h, failed 3 times, owner @a:x
 *      https://matrix.to/#/%21room%3Ax/%24ev"
 *   "<p><b>Daily digest, Tue 10 Mar 2026</b>: 1 open failure nobody has claimed</p>"
 *   "<ul><li><a href=\"https://matrix.to/#/%21room%3Ax/%24ev\">org/repo (main) ...</a>: open 3d 4h,"
 *   " failed 3 times, owner @a:x</li></ul>" */
cJSON *digest_content_new(const struct digest_failure *f, size_t n, int64_t now_ms, const char *timezone);

/* One report that arrived while the bridge was away. Strings are not copied. */
struct digest_report {
	const char *route;
	const char *action; /* Zuul's action: "failure", "success", "start", ... */
	const char *project;
	const char *branch;
	const char *pipeline;
	const char *what; /* the line to show, as in digest_failure; NULL: built from the key */
	int64_t at_ms;    /* when it arrived (or was reported) */
};

/* True for the actions the catch-up treats as failures: failure, merge-conflict,
 * merge-failure, config-error. */
bool digest_action_is_failure(const char *action);

/* Fills summarise[0..n) (see "Catch-up" above). */
void digest_catch_up_plan(const struct digest_report *r, size_t n, bool *summarise);

/* The catch-up summary's content, caller frees (cJSON_Delete); NULL when no report is
 * summarised. Times are UTC. body, e.g.:
 *   "While the bridge was away (2026-03-10 07:00 to 2026-03-10 09:30 UTC, 2h 30m): 2 failures
 *    that have since recovered\n"
 *   "- org/repo (main) periodic-daily: job-a: failed 2 times, first at 2026-03-10 07:10 UTC,
 *    recovered at 2026-03-10 08:00 UTC" */
cJSON *digest_catch_up_content_new(const struct digest_report *r, size_t n, const bool *summarise, int64_t away_from_ms,
				   int64_t away_to_ms);

#endif
