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

/* match: every constrained field must match one of its globs.
 * exclude: the event is dropped when any constrained field matches one of its globs. */
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
 * with ranges and '!' or '^' negation, '\\' escapes. Case-sensitive. */
bool glob_match(const char *pattern, const char *text);
/* NULL when pattern is a well-formed glob, else a static reason
 * ("unterminated [", "trailing backslash", "empty pattern"). */
const char *glob_check(const char *pattern);

/* Whether ev goes to route r. When why is not NULL, appends one human-readable
 * line per rule that decided, e.g.
 *   "match pipelines: \"periodic-daily\" matches \"periodic-*\""
 *   "match projects: \"foo/bar\" matches none of [\"SovereignCloudStack/*\"]"
 *   "exclude branches: \"stable/1\" matches \"stable/*\"" */
bool route_matches(const struct route *r, const struct zuul_event *ev, struct strbuf *why);

/* Frees the members of r (not r itself). */
void route_clear(struct route *r);
void route_rules_clear(struct route_rules *rules);

#endif
