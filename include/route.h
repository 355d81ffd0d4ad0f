/* route: which routes a decoded Zuul event goes to.
 * Routes are plain data (filled by config); matching is pure and explainable. */
#ifndef ZMB_ROUTE_H
#define ZMB_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"
#include "zuul.h"

/* The fields a rule can look at. */
enum route_field {
	ROUTE_TENANT,
	ROUTE_PIPELINE,
	ROUTE_PROJECT,
	ROUTE_BRANCH,
	ROUTE_ACTION,
	ROUTE_BUILDSET_RESULT,
	ROUTE_BUILD_RESULT, /* matches when any build of the buildset has a matching result */
	ROUTE_NFIELDS
};

/* Config spelling of each field: "tenants", "pipelines", "projects", "branches",
 * "actions", "buildset_results", "build_results". */
const char *route_field_key(enum route_field f);
/* Inverse of route_field_key; -1 when unknown. */
int route_field_from_key(const char *key);

struct route_globs {
	char **patterns; /* NULL when the field is not constrained */
	size_t n;
};

/* A field is constrained when its patterns are not NULL (config rejects empty
 * lists; an empty constrained list would match nothing).
 * match: every constrained field must match at least one of its globs (AND over
 *   fields, OR within a field).
 * exclude: the event is dropped when any constrained field matches any of its globs.
 * Values: tenant, pipeline, action, buildset_result from the event. Projects and
 * branches are matched per change of the item (zuul_event_changes: every change of a
 * dependency cycle, or the top-level change of Zuul < 10): the match rules take a change
 * when its project and its branch match; the exclude rules drop each change they match;
 * the report goes to the route when a change is left (so a route for org/b takes a cycle
 * led by org/a, and `exclude projects` drops a cycle only when it drops every change).
 * A missing (NULL) value is matched as "", so "*" matches it and "FAILURE" does not.
 * build_results looks at ev->builds only (not retry_builds): it matches when any build's
 * result matches (a running build's NULL result is ""); a job's custom text (success- or
 * failure-message) also matches as the result it stands for (custom_means: "FAILURE" on a
 * failing report); with no builds it is matched once as "". */
struct route_rules {
	struct route_globs field[ROUTE_NFIELDS];
};

struct route {
	char *name;
	char *room;          /* room id (!abc:hs) or alias (#name:hs) */
	char *template_path; /* resolved absolute or template_dir-relative path */
	bool has_match;      /* false: the route takes every report */
	struct route_rules match;
	struct route_rules exclude;
	int line;            /* line of the route in the config file, for messages */
};

/* fnmatch-like glob: '*' any run (also '/'), '?' one character, '[...]' a class
 * with ranges and '!' or '^' negation, '\\' escapes. Case-sensitive.
 * Characters are UTF-8 code points ('?' and classes take a whole character; an
 * invalid byte counts as one character). A ']' first in a class is a member, '-'
 * first or last too. Malformed parts are taken literally (an unterminated '[' is a
 * '[', a trailing backslash a backslash); an empty pattern matches only "".
 * NULL text is matched as "". Cost is O(len(pattern) * len(text)) at worst. */
bool glob_match(const char *pattern, const char *text);
/* NULL when pattern is a well-formed glob, else a static reason
 * ("unterminated [", "trailing backslash", "empty pattern", "not valid UTF-8",
 * "range out of order in [...]"). */
const char *glob_check(const char *pattern);

// Whether ev goes to route r. When why is not NULL, appends one line (ending in
// '\n') per constrained field looked at, then a verdict line:
//   match pipelines: "periodic-daily" matches "periodic-*"
//   match projects: "foo/bar" matches none of "SovereignCloudStack/*", "osism/*"
//   match buildset_results: "" (missing) matches none of "FAILURE"
//   match build_results: "FAILURE" (job "tox-py3") matches "FAIL*"
//   match build_results: "broken" (job "lint", the job's own text for FAILURE) matches "FAILURE"
//   match projects: "org/a" (change 1 of 2) matches none of "org/b"   (several changes)
//   exclude branches: "stable/1" matches "stable/*" -> excluded
//   exclude projects: "org/noisy" (change 2 of 2) matches "org/noisy" -> change excluded
//   exclude: no change of the item is left -> excluded
//   route periodic-failures: does not match
// With why, every match field is shown (without, the first failing one stops);
// exclude fields are looked at only when the match rules took the report, up to
// the first that excludes it. Values and patterns are quoted and escaped
// (quotes, backslashes, control and invisible characters, invalid bytes) and cut
// after 200 characters, so hostile values cannot forge lines.
// (Line comments because the examples contain slash-star.)
bool route_matches(const struct route *r, const struct zuul_event *ev, struct strbuf *why);

/* The escaping of the explanations above, for other modules that explain a decision
 * (owners.c) so that every explanation reads and defends itself alike.
 * route_escape_value appends value (NULL as "") with backslash, double quote, control
 * characters (\n \t \r, else \xNN), invalid UTF-8 bytes (\xNN) and the invisible
 * characters that break or reorder lines (C1, U+200E/F, U+2028-202E, U+2066-2069, U+FEFF:
 * \uNNNN) escaped, stopping after 200 characters; returns whether it stopped early (the
 * caller decides whether to show "..."). route_quote_value appends the same in double
 * quotes, followed by "..." after the closing quote when cut. */
bool route_escape_value(struct strbuf *out, const char *value);
void route_quote_value(struct strbuf *out, const char *value);

/* Free the members of r (not r itself) and zero them, so clearing twice is safe. */
void route_clear(struct route *r);
void route_rules_clear(struct route_rules *rules);

#endif
