/* zuul: a Zuul MQTT report (JSON) decoded into a typed event.
 * Handles both schema generations (legacy Zuul 3.x and current Zuul); pure, no I/O. */
#ifndef ZMB_ZUUL_H
#define ZMB_ZUUL_H

#include <stdbool.h>
#include <stddef.h>

/* Every string below is owned by the event, NUL-terminated, valid UTF-8, and
 * NULL when the payload did not carry it (missing, null, or an unusable type).
 * An empty string in the payload is kept as "" only where "" means something
 * (message); everywhere else Zuul's '' means "none" and becomes NULL, as for
 * change/patchset. Strings may still contain control characters and markup:
 * escaping is the consumer's job. Times are Unix seconds; 0 = unknown (null,
 * negative, non-finite, or a string that is not a plain decimal number). */

struct zuul_change {
	char *project;
	char *branch;
	char *change_url;
	char *change;   /* normalised: 812 -> "812", 3.0 -> "3", "3" -> "3"; null, "", 3.5, -1 -> NULL */
	char *patchset;
	char *commit_id;
	char *owner;    /* a name; Zuul sends a string, older drivers an object (name/username) */
	char *ref;
	char *topic;
};

struct zuul_artifact {
	char *name;
	char *url;
};

struct zuul_build {
	char *job_name;
	char *job_uuid; /* current schema only */
	char *uuid;     /* NULL for a job Zuul never made a build for (not run yet, or never) */
	/* As Zuul sent it: "SUCCESS", "FAILURE", ... NULL while running; or the job's own
	 * success-message / failure-message text (Zuul's QueueItem.formatJobResult puts that in
	 * place of the result), then custom_result is set. */
	char *result;
	bool has_build; /* Zuul had a build for this job: the entry carries a uuid or a result */
	/* result is a job's custom text, not one of Zuul's result words (zuul_result_is_zuuls). */
	bool custom_result;
	/* For a custom_result, the result it stands for, decided from the report (static string):
	 * "FAILURE" when the item's overall result is a failure and the build finished (has an
	 * end_time), "SUCCESS" for a finished voting build of a buildset that succeeded (Zuul
	 * fails the buildset on any voting failure), else NULL (running, skipped, non-voting in
	 * a successful buildset, an attempt in retry_builds: unknown). Decoded reports only; zero
 * for hand-built structs. */
	const char *custom_means;
	char *log_url;
	char *web_url;  /* current schema only */
	bool voting;    /* defaults to true when absent */
	bool retried;   /* true for entries of buildset.retry_builds */
	double execute_time;
	double start_time;
	double end_time;
	struct zuul_change *change; /* the build's own change (current schema), may be NULL */
	struct zuul_artifact *artifacts;
	size_t n_artifacts;
	char **dependencies; /* job names this build depended on */
	size_t n_dependencies;
};

enum zuul_schema { ZUUL_SCHEMA_LEGACY, ZUUL_SCHEMA_CURRENT };

/* Payloads larger than this, or with arrays/objects nested deeper than this, are rejected
 * (real reports are a few KiB and about 6 levels deep). */
#define ZUUL_PAYLOAD_MAX (4 * 1024 * 1024)
#define ZUUL_NESTING_MAX 256

struct zuul_event {
	enum zuul_schema schema; /* CURRENT when the payload carries uuid, changes or buildset.result */
	char *action;            /* always set: "start", "success", "failure", "merge-conflict", ... */
	char *tenant;
	char *pipeline;
	char *queue;
	char *uuid;              /* the item uuid (current schema) */
	char *zuul_ref;
	char *zuul_event_id;
	char *message;
	/* Zuul's web root for this tenant as Zuul formats it (the payload's tenant_web_root):
	 * ends in '/', may be whitelabeled (no /t/<tenant>/). NULL when absent, or null because the
	 * tenant has no web root. Not checked as a URL here: consumers do. */
	char *tenant_web_root;
	/* The item's first change: a copy of changes[0] when the payload has changes (Zuul >= 10
	 * sends the top-level project, branch, change... only as a deprecated copy of changes[0]);
	 * else, for Zuul before 10, the top-level fields. Every change of the item is in changes. */
	struct zuul_change item;
	struct zuul_change *changes; /* current schema: all changes of the item; legacy: empty */
	size_t n_changes;
	double timestamp;
	double trigger_time;
	double enqueue_time;
	char *buildset_uuid;
	char *buildset_result;   /* current schema only */
	struct zuul_build *builds;
	size_t n_builds;
	struct zuul_build *retry_builds;
	size_t n_retry_builds;
};

/* Decodes one MQTT payload. Returns the event (caller frees with zuul_event_free),
 * or NULL with a one-line, human-readable reason in err (never containing raw
 * payload bytes; byte positions are 0-based): "not valid UTF-8 at byte 17",
 * "not JSON: ...", "not an object", "no action", or "not a Zuul report: buildset.builds is
 * a string, not an array" when a field the bridge reads has a type Zuul never sends (every
 * such field is checked, at any depth, so no report is half-decoded).
 * Python's json.dumps (Zuul's encoder) writes the bare tokens Infinity, -Infinity and NaN
 * for non-finite floats (e.g. in returned_data); outside strings they are read as null.
 * Never crashes, whatever the input.
 * One trailing NUL (a C publisher's terminator) is ignored; any other NUL is rejected.
 * JSON escapes "\u0000" and lone surrogates ("\ud800") decode to U+FFFD instead of
 * truncating the string or failing the whole report. */
struct zuul_event *zuul_event_parse(const char *payload, size_t len, char *err, size_t errlen);
void zuul_event_free(struct zuul_event *ev);

/* Whether a build ended in failure. A custom text (custom_result) fails exactly when it
 * stands for "FAILURE" (see custom_means). Otherwise: its result is set (not running) and is
 * none of SUCCESS, SKIPPED, ABORTED, CANCELED, RETRY, DEQUEUED (success, or neutral outcomes:
 * skipped because of a dependency, cancelled by a dequeue or a newer patchset, retried). So
 * FAILURE, POST_FAILURE, TIMED_OUT, NODE_FAILURE, RETRY_LIMIT, ERROR and any result Zuul adds
 * later count as failed. Exact, case-sensitive comparison, as Zuul sends them. */
bool zuul_build_failed(const struct zuul_build *b);

/* The change a build tested: its own (current schema), else the item's first. In a
 * dependency cycle Zuul reports the whole item under its first change, but a build of
 * org/b's job tested org/b. Never NULL. */
const struct zuul_change *zuul_build_change(const struct zuul_event *ev, const struct zuul_build *b);

/* Whether s is one of Zuul's own result words (build or buildset results of Zuul 3.x to
 * 14.3.0: SUCCESS, FAILURE, POST_FAILURE, TIMED_OUT, ...). Anything else in a build's result
 * is a job's success-message or failure-message. */
bool zuul_result_is_zuuls(const char *s);

/* The item's overall result: buildset.result, else (Zuul 3.x) the result the action implies
 * (success -> SUCCESS, failure -> FAILURE, merge-conflict -> MERGE_CONFLICT, merge-failure ->
 * MERGE_FAILURE, config-error -> CONFIG_ERROR, dequeue -> DEQUEUED); NULL when unknown. */
const char *zuul_event_result(const struct zuul_event *ev);

/* The changes of the item as a list: ev->changes, or for payloads without changes (Zuul < 10)
 * the item's top-level change as a list of one. Never empty. */
const struct zuul_change *zuul_event_changes(const struct zuul_event *ev, size_t *n);

/* A short preview of an arbitrary payload safe to log: at most max_chars
 * characters, "..." included when cut (max_chars < 3 gives just "..." when cut).
 * Control characters (C0, DEL, C1, U+2028/9, bidi controls) become '?', each
 * invalid UTF-8 byte becomes U+FFFD; a UTF-8 sequence is never split. Caller frees. */
char *zuul_payload_preview(const char *payload, size_t len, size_t max_chars);

/* A stable identity of the item this report is about, for dedup and transaction
 * ids: the buildset uuid when there is one, else the item uuid, else a hex hash of
 * the payload bytes ("fnv1a64:" and 16 hex digits). A uuid is used only when it is
 * 1-128 characters of [A-Za-z0-9._-], so the key is always URL-safe. ev may be NULL.
 * Caller frees. */
char *zuul_event_key(const struct zuul_event *ev, const char *payload, size_t len);

#endif
