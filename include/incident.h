/* incident: groups failure reports that point at broken infrastructure (node pool down, disk
 * full, one job failing on many projects) into one "infrastructure incident" per (tenant, cause)
 * instead of one alert per project, and renders that incident as a Matrix message.
 * Pure: no I/O, no clock (every function that needs the time takes now_ms), no globals. The
 * bridge posts and edits the message, stores claims, and persists the tracker's state.
 *
 * Semantics
 * ---------
 * Failed build: a build of ev->builds (retry_builds are ignored: they were superseded) whose
 *   result is set and is none of SUCCESS, SKIPPED, ABORTED, CANCELED, RETRY (as chatops'
 *   build_failed). Non-voting builds are treated exactly like voting ones, both as incident
 *   members and in the "absorbed" decision: a node pool that breaks breaks them too, and a
 *   failure report lists them like the others.
 * The build's project is the build's own change's project when it has one (current schema),
 *   else the item's project. Its link is web_url (the build page) when it is an absolute
 *   http(s) URL, else log_url when that is, else none.
 *
 * Infra by result: a failed build whose result is in infra_results (exact, case-sensitive)
 *   belongs to the incident (tenant, cause = that result). The incident opens at the first
 *   such build: there is no threshold.
 * Infra by spread: a failed build with any other result of job J on project P is remembered
 *   (tenant, J, P, time, event key). When, within job_window_s before now, J has failed on at
 *   least job_min_projects DISTINCT projects of the tenant (this report included), an incident
 *   (tenant, cause "job J") opens with all those builds as members, and later failures of J
 *   in that tenant join it while it is open. The same project failing J repeatedly counts as
 *   one project, so it never opens an incident by itself.
 * Absorbed: a report is absorbed (the bridge posts no per-project alert) only when it has at
 *   least one failed build and EVERY failed build of it is a member of an incident. A report
 *   with any other failed build is a project failure and keeps its own alert; its infra builds
 *   are still recorded as incident members (the incident lists everything the broken
 *   infrastructure touched, and outcome.opened/grown say so), so its alert and the incident
 *   may both mention such a build. A report with no failed build at all (merge-conflict,
 *   config-error) is never absorbed and changes nothing.
 * Retroactive absorption: when a spread incident opens, an earlier, not absorbed report (in
 *   the window) whose every failed build is now a member of some incident is named in
 *   outcome.retro, so the bridge can point its already posted alert at the incident. An earlier
 *   report that still has another failed build stays a project failure and is not named (its
 *   J build is still listed in the incident).
 * Open and closed: an incident is open while members keep coming; it closes once job_window_s
 *   has passed since its last member (now >= last + window). incident_expire() closes due
 *   incidents and names every closed incident exactly once. A failure after closing starts a
 *   NEW incident with a new id (incident_observe closes a due incident itself when
 *   incident_expire was not called in time; incident_expire still names it once).
 * Ids: "<tenant>-<cause>-<hash>-<opened_ms>" where tenant and cause are cut to 40 bytes with
 *   every byte outside [A-Za-z0-9._] replaced by '_', and hash is 16 hex digits of FNV-1a over
 *   (tenant, kind, cause): at most 120 bytes of [A-Za-z0-9._-], so an id is usable as (part of)
 *   a Matrix transaction id as it is, stable across restarts (save/load), and unique.
 * Members are (project, job, result, build URL, event key, time). The same build reported twice
 *   (QoS redelivery) is one member: identity is the build uuid, or (event key, project, job)
 *   without one. At most INCIDENT_MEMBERS_MAX members are kept per incident; later ones are
 *   only counted ("and N more"), and past the cap a redelivery can be counted twice.
 * Memory: spread history older than the window is pruned (at most INCIDENT_RECENT_MAX reports
 *   are remembered, the oldest dropped first); a closed incident is forgotten once it has been
 *   named by incident_expire and INCIDENT_CLOSED_KEEP_S have passed since it closed, or when
 *   more than INCIDENT_CLOSED_MAX closed incidents are kept.
 * Tenant NULL is the tenant "". A build without a job name or project is never a spread
 *   candidate (it cannot be counted), but can still be an infra-by-result member.
 */
#ifndef ZMB_INCIDENT_H
#define ZMB_INCIDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "zuul.h"

#define INCIDENT_MEMBERS_MAX 500
#define INCIDENT_RECENT_MAX 5000
#define INCIDENT_CLOSED_MAX 100
#define INCIDENT_CLOSED_KEEP_S (24 * 3600)

/* The defaults the issue names. */
#define INCIDENT_DEFAULT_WINDOW_S (30 * 60)
#define INCIDENT_DEFAULT_MIN_PROJECTS 3
extern const char *const incident_default_infra_results[]; /* NODE_FAILURE ... ERROR, NULL-terminated */

/* Copied by the tracker; the caller keeps ownership of its strings.
 * infra_results NULL (and n 0): the default list. Non-NULL with n 0: no result is infra.
 * job_window_s <= 0: the default (30 minutes).
 * job_min_projects 0: the default (3); negative: spread grouping is off; 1 is taken as 2
 *   (one project cannot be a spread). */
struct incident_options {
	const char *const *infra_results;
	size_t n_infra_results;
	long long job_window_s;
	int job_min_projects;
};

struct incident_tracker;

/* An earlier report now wholly covered by incident_id (both owned by the outcome). */
struct incident_retro {
	char *event_key;
	char *incident_id;
};

/* What one observed report did. Fill by incident_observe, free with incident_outcome_free.
 * An id appears at most once in opened and grown together (opened wins). */
struct incident_outcome {
	bool absorbed;                 /* no per-project alert for this report */
	char **opened;                 /* incidents this report opened */
	size_t n_opened;
	char **grown;                  /* already open incidents that got new members */
	size_t n_grown;
	struct incident_retro *retro;  /* earlier reports absorbed retroactively (spread) */
	size_t n_retro;
};

void incident_outcome_free(struct incident_outcome *out);

/* A tracker with the given options (NULL: all defaults). Caller frees with incident_tracker_free. */
struct incident_tracker *incident_tracker_new(const struct incident_options *o);
void incident_tracker_free(struct incident_tracker *t);
/* On config reload: open incidents keep going under the new window; a result taken off the
 * list gets no new members (its failures are then ordinary, spread candidates), and its open
 * incident closes when its window passes. */
void incident_tracker_set_options(struct incident_tracker *t, const struct incident_options *o);

/* Observes one failure report (the caller passes only failure-like actions) with its event key
 * (zuul_event_key; NULL is taken as ""). Fills *out (always; free it with incident_outcome_free)
 * and returns 1 when the report was absorbed, 0 when not. */
int incident_observe(struct incident_tracker *t, const struct zuul_event *ev, const char *event_key,
                     int64_t now_ms, struct incident_outcome *out);

/* Closes the incidents whose window has passed and returns how many closed incidents were not
 * reported yet; each is reported exactly once. *closed_ids (may be NULL when the ids are not
 * wanted) gets a NULL-terminated array of their ids, or NULL when there are none; caller frees
 * with incident_ids_free. Also forgets old closed incidents (see Memory above). */
size_t incident_expire(struct incident_tracker *t, int64_t now_ms, char ***closed_ids);
void incident_ids_free(char **ids);

/* A snapshot of one incident; the strings belong to the tracker and live until its next call
 * that changes state (observe, expire, load, free). */
struct incident_info {
	const char *id;
	const char *tenant;
	const char *cause;   /* the result ("NODE_FAILURE") or "job NAME" */
	bool by_spread;
	int64_t opened_ms;   /* the first member's time */
	int64_t last_ms;     /* the newest member's time */
	bool closed;         /* closed by incident_expire or incident_observe */
	size_t n_members;    /* kept members plus those only counted */
	size_t n_projects;   /* distinct projects among the kept members */
};

/* 0 and *info filled, or -1 when no incident has that id (never existed, or forgotten). */
int incident_get(const struct incident_tracker *t, const char *id, struct incident_info *info);

/* The Matrix message content (msgtype m.notice, body, format org.matrix.custom.html,
 * formatted_body, "m.mentions": {}: it pings nobody until the on-call is mentioned) of an incident as it stands at now_ms: cause, tenant, first and last seen,
 * the affected projects with their jobs, each job linking to its build (only absolute http(s)
 * URLs become links; every value is HTML-escaped and control characters become '?').
 * Closed incidents (also one whose window passed at now_ms before incident_expire ran) end
 * with "closed: no new failures since HH:MM UTC". The member list is cut with "and N more" so
 * the printed content stays under about 40 KB. Caller frees with cJSON_Delete; NULL for an
 * unknown id. */
cJSON *incident_content_new(const struct incident_tracker *t, const char *id, int64_t now_ms);

/* The tracker's state (incidents, members, spread history; not the options) as JSON, for the
 * store. Caller frees. */
char *incident_tracker_save(const struct incident_tracker *t);
/* Replaces the tracker's state with a saved one: 0, or -1 (state unchanged) when json is not
 * a state saved by incident_tracker_save. */
int incident_tracker_load(struct incident_tracker *t, const char *json);

#endif
