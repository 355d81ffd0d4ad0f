/* owners: who is responsible for a project or job (config `owners` rules), the most
 * specific rule winning, and why. Pure: rules in, a rule index and an explanation out. */
#ifndef ZMB_OWNERS_H
#define ZMB_OWNERS_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* One `owners` rule of the config. A field with n == 0 is not constrained (matches
 * anything); patterns are globs as in route.h (glob_match). */
struct owners_rule {
	char **tenants;
	size_t n_tenants;
	char **pipelines;
	size_t n_pipelines;
	char **projects;
	size_t n_projects;
	char **jobs;
	size_t n_jobs;
	char **users;             /* Matrix user ids to mention, may be empty when forward_room is set */
	size_t n_users;
	char *forward_room;       /* room id or alias a notice is forwarded to; NULL: none */
	long long forward_after_s; /* when to forward, counted from the failure; 0: with the alert */
	long long escalate_after_s; /* unclaimed this long -> the on-call is pinged; -1: chatops.escalate_after */
	char *runbook;            /* http(s) URL shown with the failure; NULL: none */
	char *hint;               /* one line shown with the failure; NULL: none */
	int line;                 /* line of the rule in the config file */
};

struct owners_config {
	struct owners_rule *rules;
	size_t n_rules;
};

/* What a rule is matched against. Any field may be NULL (matched as ""). */
struct owners_subject {
	const char *tenant;
	const char *pipeline;
	const char *project;
	const char *job;
};

/* The index of the most specific rule matching s, or -1 when none does. When why is
 * not NULL, appends a human explanation (one line per candidate that matched, then
 * which won and why). See owners.c for the specificity order. */
int owners_match(const struct owners_config *oc, const struct owners_subject *s, struct strbuf *why);

// The reply to `!zuul owners PROJECT [JOB]`, one paragraph of plain text, e.g.
//   org/repo (job tox-py3): owned by @a:x and @b:x, rule at line 42 (projects "org/*",
//   jobs "tox-*"); notices go to #provider:x after 30m. Runbook: https://...
//   Nobody owns org/repo: no owners rule matches; failures mention the on-call.
// Rules that would match only for some value of a field s leaves NULL (a job rule
// when no job was named) are listed after it ("Other rules apply to some jobs: ...").
// Names are escaped as in `why`, so they cannot add lines. s may be NULL (all
// missing). Caller frees. (Line comments because the examples contain slash-star.)
char *owners_describe(const struct owners_config *oc, const struct owners_subject *s);

/* Frees what the rule owns and zeroes it. */
void owners_rule_clear(struct owners_rule *r);
void owners_config_clear(struct owners_config *oc);

#endif
