/* owners: which `owners` rule of the config is responsible for a project or job, and
 * why; plus the plain-text answer to `!zuul owners`. Pure: no I/O, no clock, no globals. */

// A rule matches a subject when every field it constrains (n > 0) has a glob matching
// the subject's value (glob_match; a NULL value is matched as ""). Of the matching rules
// the most specific wins, by this total order, each step only breaking ties of the one
// before:
//   (a) a rule constraining `jobs` beats one that does not: a job's owner knows more
//       about a failure than the project's owner;
//   (b) more constrained fields (of tenants, pipelines, projects, jobs) beat fewer;
//   (c) the literal prefix of the rule's best pattern in `projects` that matches, then
//       the same in `jobs`: the longer prefix wins, and at equal length a pattern with no
//       wildcard at all (an exact name) beats one with a wildcard. The literal prefix is
//       the bytes before the first '*', '?' or '[' (a backslash-escaped character counts
//       as one literal byte, the backslash not at all). A field the rule does not
//       constrain ranks below any pattern, "*" included;
//   (d) the rule earlier in the list (the config file) wins.
// So "org/repo" beats "org/*" beats "*", and {projects "org/*", jobs "tox-*"} beats
// {projects "org/repo"}.
// (Line comments because the examples contain slash-star.)
#include "owners.h"

#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "route.h"

/* ---- quoting (route.c's escaping, so both explanations read alike) ---- */

/* v escaped without quotes, "..." when cut: for names in a sentence. */
static void put_plain(struct strbuf *sb, const char *v)
{
	if (route_escape_value(sb, v))
		strbuf_puts(sb, "...");
}

static void put_value(struct strbuf *sb, const char *v)
{
	route_quote_value(sb, v);
	if (!v)
		strbuf_puts(sb, " (missing)");
}

/* ---- the fields of a rule ---- */

enum field { F_TENANT, F_PIPELINE, F_PROJECT, F_JOB, F_COUNT };

static const char *const field_plural[F_COUNT] = {"tenants", "pipelines", "projects", "jobs"};
static const char *const field_single[F_COUNT] = {"tenant", "pipeline", "project", "job"};

static size_t rule_patterns(const struct owners_rule *r, enum field f, char ***patterns)
{
	switch (f) {
	case F_TENANT: *patterns = r->tenants; return r->n_tenants;
	case F_PIPELINE: *patterns = r->pipelines; return r->n_pipelines;
	case F_PROJECT: *patterns = r->projects; return r->n_projects;
	case F_JOB:
	case F_COUNT: break;
	}
	*patterns = r->jobs;
	return r->n_jobs;
}

static const char *subject_value(const struct owners_subject *s, enum field f)
{
	switch (f) {
	case F_TENANT: return s->tenant;
	case F_PIPELINE: return s->pipeline;
	case F_PROJECT: return s->project;
	case F_JOB:
	case F_COUNT: break;
	}
	return s->job;
}

/* How specific one pattern is: step (c) of the order at the top. */
struct literal {
	long len;   /* -1: the field is not constrained */
	bool exact; /* no wildcard at all */
};

static struct literal pattern_literal(const char *p)
{
	struct literal l = {0, true};
	for (; *p; p++) {
		if (*p == '*' || *p == '?' || *p == '[') {
			l.exact = false;
			return l;
		}
		if (*p == '\\' && p[1])
			p++;
		l.len++;
	}
	return l;
}

static int literal_cmp(struct literal a, struct literal b)
{
	if (a.len != b.len)
		return a.len > b.len ? 1 : -1;
	if (a.exact != b.exact)
		return a.exact ? 1 : -1;
	return 0;
}

/* How one matching rule ranks; best[f] is the index of its most specific pattern in
 * field f that matched (-1 when the field is not constrained). */
struct candidate {
	size_t index;
	int nfields;
	long best[F_COUNT];
	struct literal lit[F_COUNT];
};

/* Ranks r for s into *c: per constrained field, its most specific pattern that matches.
 * A field s leaves NULL is matched as "", unless open_missing: then it could take any value,
 * so every pattern of it counts, and *needs_missing (when not NULL) is set when some such
 * field has no pattern matching "" (the rule would not match s as is). Returns whether every
 * constrained field has a pattern that counts. */
static bool rank_rule(const struct owners_rule *r, size_t index, const struct owners_subject *s, bool open_missing,
		      struct candidate *c, bool *needs_missing)
{
	c->index = index;
	c->nfields = 0;
	for (int f = 0; f < F_COUNT; f++) {
		char **pats;
		size_t n = rule_patterns(r, (enum field)f, &pats);
		c->best[f] = -1;
		c->lit[f] = (struct literal){-1, false};
		if (n == 0)
			continue;
		c->nfields++;
		const char *v = subject_value(s, (enum field)f);
		bool any_hit = false;
		for (size_t i = 0; i < n; i++) {
			bool hit = glob_match(pats[i], v ? v : "");
			any_hit = any_hit || hit;
			if (!hit && !(open_missing && !v))
				continue;
			struct literal l = pattern_literal(pats[i]);
			if (c->best[f] < 0 || literal_cmp(l, c->lit[f]) > 0) {
				c->best[f] = (long)i;
				c->lit[f] = l;
			}
		}
		if (c->best[f] < 0)
			return false;
		if (!v && !any_hit && needs_missing)
			*needs_missing = true;
	}
	return true;
}

/* Whether r matches s; fills *c when it does. */
static bool rule_matches(const struct owners_rule *r, size_t index, const struct owners_subject *s, struct candidate *c)
{
	return rank_rule(r, index, s, false, c, NULL);
}

/* Which criterion decided between two candidates (in the order at the top). */
enum decided { BY_JOBS, BY_NFIELDS, BY_PROJECTS, BY_JOB_PATTERN, BY_ORDER };

/* > 0 when a is more specific than b; *by says which step decided. */
static int candidate_cmp(const struct candidate *a, const struct candidate *b, enum decided *by)
{
	bool aj = a->best[F_JOB] >= 0, bj = b->best[F_JOB] >= 0;
	int d;
	if (aj != bj) {
		*by = BY_JOBS;
		return aj ? 1 : -1;
	}
	if (a->nfields != b->nfields) {
		*by = BY_NFIELDS;
		return a->nfields > b->nfields ? 1 : -1;
	}
	if ((d = literal_cmp(a->lit[F_PROJECT], b->lit[F_PROJECT])) != 0) {
		*by = BY_PROJECTS;
		return d;
	}
	if ((d = literal_cmp(a->lit[F_JOB], b->lit[F_JOB])) != 0) {
		*by = BY_JOB_PATTERN;
		return d;
	}
	*by = BY_ORDER;
	return a->index < b->index ? 1 : a->index > b->index ? -1 : 0;
}

/* ---- explanations ---- */

/* "rule at line N" (the index when the line is unknown, as in hand-built configs). */
static void put_rule(struct strbuf *sb, const struct owners_config *oc, size_t index)
{
	int line = oc->rules[index].line;
	if (line > 0)
		strbuf_printf(sb, "rule at line %d", line);
	else
		strbuf_printf(sb, "rule #%zu", index + 1);
}

/* The best pattern of field f that matched; NULL when the field is not constrained. */
static const char *best_pattern(const struct owners_config *oc, const struct candidate *c, enum field f)
{
	char **pats;
	rule_patterns(&oc->rules[c->index], f, &pats);
	return c->best[f] >= 0 ? pats[c->best[f]] : NULL;
}

/* One line: the rule, then each constrained field as `value matches pattern`. */
static void explain_candidate(struct strbuf *why, const struct owners_config *oc, const struct owners_subject *s,
			      const struct candidate *c)
{
	put_rule(why, oc, c->index);
	strbuf_puts(why, " matches:");
	if (c->nfields == 0)
		strbuf_puts(why, " no constraints, takes everything");
	bool first = true;
	for (int f = 0; f < F_COUNT; f++) {
		if (c->best[f] < 0)
			continue;
		strbuf_printf(why, "%s %s ", first ? "" : ",", field_single[f]);
		first = false;
		put_value(why, subject_value(s, (enum field)f));
		strbuf_puts(why, " matches ");
		route_quote_value(why, best_pattern(oc, c, (enum field)f));
	}
	strbuf_putc(why, '\n');
}

// The reason for a win by a pattern: "its projects pattern "org/repo" is exact, ...".
static void put_literal_reason(struct strbuf *why, const struct owners_config *oc, const struct candidate *w,
			       const struct candidate *r, enum field f)
{
	strbuf_printf(why, "its %s pattern ", field_plural[f]);
	route_quote_value(why, best_pattern(oc, w, f));
	if (r->best[f] < 0) {
		strbuf_puts(why, " is more specific than none (");
		put_rule(why, oc, r->index);
		strbuf_printf(why, " does not constrain %s)", field_plural[f]);
		return;
	}
	if (w->lit[f].len == r->lit[f].len) {
		strbuf_puts(why, " is exact, ");
		route_quote_value(why, best_pattern(oc, r, f));
		strbuf_puts(why, " of ");
		put_rule(why, oc, r->index);
		strbuf_puts(why, " is not");
		return;
	}
	strbuf_printf(why, " has a longer literal prefix (%ld) than ", w->lit[f].len);
	route_quote_value(why, best_pattern(oc, r, f));
	strbuf_printf(why, " (%ld) of ", r->lit[f].len);
	put_rule(why, oc, r->index);
}

static void explain_win(struct strbuf *why, const struct owners_config *oc, const struct candidate *w,
			const struct candidate *runner_up)
{
	put_rule(why, oc, w->index);
	strbuf_puts(why, " wins: ");
	if (!runner_up) {
		strbuf_puts(why, "the only rule that matches\n");
		return;
	}
	const struct candidate *r = runner_up;
	enum decided by;
	candidate_cmp(w, r, &by);
	switch (by) {
	case BY_JOBS:
		strbuf_puts(why, "it names jobs, ");
		put_rule(why, oc, r->index);
		strbuf_puts(why, " does not");
		break;
	case BY_NFIELDS:
		strbuf_printf(why, "it constrains %d fields, ", w->nfields);
		put_rule(why, oc, r->index);
		strbuf_printf(why, " only %d", r->nfields);
		break;
	case BY_PROJECTS: put_literal_reason(why, oc, w, r, F_PROJECT); break;
	case BY_JOB_PATTERN: put_literal_reason(why, oc, w, r, F_JOB); break;
	case BY_ORDER:
		strbuf_puts(why, "as specific as ");
		put_rule(why, oc, r->index);
		strbuf_puts(why, " and earlier in the file");
		break;
	}
	strbuf_putc(why, '\n');
}

static void explain_none(struct strbuf *why, const struct owners_config *oc, const struct owners_subject *s)
{
	strbuf_puts(why, "no owners rule matches");
	if (!oc || oc->n_rules == 0) {
		strbuf_puts(why, " (there are no owners rules)\n");
		return;
	}
	strbuf_printf(why, " (%zu rule%s tried on", oc->n_rules, oc->n_rules == 1 ? "" : "s");
	for (int f = 0; f < F_COUNT; f++) {
		strbuf_printf(why, "%s %s ", f ? "," : "", field_single[f]);
		put_value(why, subject_value(s, (enum field)f));
	}
	strbuf_puts(why, ")\n");
}

/* ---- matching ---- */

/* Index of the winner into *win (and the runner-up into *second, -1 if none);
 * explains every match into why when not NULL. Returns whether any rule matched. */
static bool find_winner(const struct owners_config *oc, const struct owners_subject *s, struct strbuf *why,
			struct candidate *win, struct candidate *second, bool *has_second)
{
	bool found = false;
	*has_second = false;
	for (size_t i = 0; oc && i < oc->n_rules; i++) {
		struct candidate c;
		if (!rule_matches(&oc->rules[i], i, s, &c))
			continue;
		if (why)
			explain_candidate(why, oc, s, &c);
		enum decided by;
		if (!found) {
			*win = c;
			found = true;
		} else if (candidate_cmp(&c, win, &by) > 0) {
			*second = *win;
			*has_second = true;
			*win = c;
		} else if (!*has_second || candidate_cmp(&c, second, &by) > 0) {
			*second = c;
			*has_second = true;
		}
	}
	return found;
}

int owners_match(const struct owners_config *oc, const struct owners_subject *s, struct strbuf *why)
{
	static const struct owners_subject empty = {0};
	if (!s)
		s = &empty;
	struct candidate win, second;
	bool has_second;
	if (!find_winner(oc, s, why, &win, &second, &has_second)) {
		if (why)
			explain_none(why, oc, s);
		return -1;
	}
	if (why)
		explain_win(why, oc, &win, has_second ? &second : NULL);
	return (int)win.index;
}

/* ---- the `owners` command's reply ---- */

/* Whether r would match s if the fields s leaves NULL could take any value, while it
 * does not match as is (a rule for particular jobs when the command named none). Fills
 * *c with r's rank at best: in such a field, its most specific pattern. */
static bool matches_some_subject(const struct owners_rule *r, size_t index, const struct owners_subject *s,
				 struct candidate *c)
{
	bool needs_missing = false;
	return rank_rule(r, index, s, true, c, &needs_missing) && needs_missing;
}

// The patterns a match used: projects "org/*", jobs "tox-*".
static void put_matched_patterns(struct strbuf *sb, const struct owners_config *oc, const struct candidate *c)
{
	bool first = true;
	for (int f = 0; f < F_COUNT; f++) {
		if (c->best[f] < 0)
			continue;
		strbuf_printf(sb, "%s%s ", first ? "" : ", ", field_plural[f]);
		first = false;
		route_quote_value(sb, best_pattern(oc, c, (enum field)f));
	}
}

/* "jobs "tox-*", "lint"": the constraints on the fields s leaves NULL (3 patterns at most). */
static void put_missing_constraints(struct strbuf *sb, const struct owners_rule *r, const struct owners_subject *s)
{
	bool first = true;
	for (int f = 0; f < F_COUNT; f++) {
		char **pats;
		size_t n = rule_patterns(r, (enum field)f, &pats);
		if (n == 0 || subject_value(s, (enum field)f))
			continue;
		strbuf_printf(sb, "%s%s ", first ? "" : ", ", field_plural[f]);
		first = false;
		for (size_t i = 0; i < n && i < 3; i++) {
			if (i)
				strbuf_puts(sb, " or ");
			route_quote_value(sb, pats[i]);
		}
		if (n > 3)
			strbuf_puts(sb, " or more");
	}
}

static void put_subject(struct strbuf *sb, const struct owners_subject *s)
{
	put_plain(sb, s->project ? s->project : "(no project)");
	const char *sep = " (";
	for (int f = F_JOB; f >= F_TENANT; f--) {
		if (f == F_PROJECT)
			continue;
		const char *v = subject_value(s, (enum field)f);
		if (!v)
			continue;
		strbuf_printf(sb, "%s%s ", sep, field_single[f]);
		put_plain(sb, v);
		sep = ", ";
	}
	if (strcmp(sep, ", ") == 0)
		strbuf_putc(sb, ')');
}

/* Names the rules that match only for some value of the fields s leaves NULL. */
static void put_other_rules(struct strbuf *sb, const struct owners_config *oc, const struct owners_subject *s,
			    const struct candidate *winner)
{
	enum { MAX_SHOWN = 5 };
	size_t shown = 0, more = 0;
	for (size_t i = 0; oc && i < oc->n_rules; i++) {
		struct candidate c;
		enum decided by;
		if (!matches_some_subject(&oc->rules[i], i, s, &c) || (winner && candidate_cmp(&c, winner, &by) < 0))
			continue;
		if (shown == MAX_SHOWN) {
			more++;
			continue;
		}
		strbuf_puts(sb, shown ? "; " : " Other rules apply to some ");
		if (!shown) {
			const char *names[3];
			size_t k = 0;
			if (!s->job)
				names[k++] = "jobs";
			if (!s->pipeline)
				names[k++] = "pipelines";
			if (!s->tenant)
				names[k++] = "tenants";
			for (size_t j = 0; j < k; j++)
				strbuf_printf(sb, "%s%s", j == 0 ? "" : j + 1 == k ? " or " : ", ", names[j]);
			strbuf_puts(sb, ": ");
		}
		put_rule(sb, oc, i);
		strbuf_puts(sb, " (");
		put_missing_constraints(sb, &oc->rules[i], s);
		strbuf_putc(sb, ')');
		shown++;
	}
	if (more)
		strbuf_printf(sb, " and %zu more", more);
	if (shown)
		strbuf_putc(sb, '.');
}

char *owners_describe(const struct owners_config *oc, const struct owners_subject *s)
{
	static const struct owners_subject empty = {0};
	if (!s)
		s = &empty;
	struct strbuf sb = STRBUF_INIT;
	struct candidate win, second;
	bool has_second;
	if (!find_winner(oc, s, NULL, &win, &second, &has_second)) {
		strbuf_puts(&sb, "Nobody owns ");
		put_subject(&sb, s);
		if (!oc || oc->n_rules == 0)
			strbuf_puts(&sb, ": no owners rules are configured; failures mention the on-call.");
		else
			strbuf_puts(&sb, ": no owners rule matches; failures mention the on-call.");
		put_other_rules(&sb, oc, s, NULL);
		return strbuf_detach(&sb);
	}

	const struct owners_rule *r = &oc->rules[win.index];
	char dur[32];
	put_subject(&sb, s);
	if (r->n_users == 0) {
		strbuf_puts(&sb, ": nobody is mentioned, ");
	} else {
		strbuf_puts(&sb, ": owned by ");
		for (size_t i = 0; i < r->n_users; i++) {
			if (i)
				strbuf_puts(&sb, i + 1 == r->n_users ? " and " : ", ");
			put_plain(&sb, r->users[i]);
		}
		strbuf_puts(&sb, ", ");
	}
	put_rule(&sb, oc, win.index);
	if (win.nfields > 0) {
		strbuf_puts(&sb, " (");
		put_matched_patterns(&sb, oc, &win);
		strbuf_putc(&sb, ')');
	}
	if (r->forward_room) {
		strbuf_puts(&sb, "; notices go to ");
		put_plain(&sb, r->forward_room);
		if (r->forward_after_s > 0)
			strbuf_printf(&sb, " after %s", duration_format((double)r->forward_after_s, dur, sizeof dur));
		else
			strbuf_puts(&sb, " with the alert");
	}
	if (r->escalate_after_s == 0)
		strbuf_puts(&sb, "; the on-call is pinged at once");
	else if (r->escalate_after_s > 0)
		strbuf_printf(&sb, "; unclaimed for %s, the on-call is pinged",
			      duration_format((double)r->escalate_after_s, dur, sizeof dur));
	strbuf_putc(&sb, '.');
	if (r->runbook) {
		strbuf_puts(&sb, " Runbook: ");
		put_plain(&sb, r->runbook);
	}
	if (r->hint) {
		strbuf_puts(&sb, " Hint: ");
		put_plain(&sb, r->hint);
	}
	put_other_rules(&sb, oc, s, &win);
	return strbuf_detach(&sb);
}

/* ---- freeing ---- */

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void owners_rule_clear(struct owners_rule *r)
{
	if (!r)
		return;
	free_list(r->tenants, r->n_tenants);
	free_list(r->pipelines, r->n_pipelines);
	free_list(r->projects, r->n_projects);
	free_list(r->jobs, r->n_jobs);
	free_list(r->users, r->n_users);
	free(r->forward_room);
	free(r->runbook);
	free(r->hint);
	memset(r, 0, sizeof *r);
}

void owners_config_clear(struct owners_config *oc)
{
	if (!oc)
		return;
	for (size_t i = 0; i < oc->n_rules; i++)
		owners_rule_clear(&oc->rules[i]);
	free(oc->rules);
	memset(oc, 0, sizeof *oc);
}
