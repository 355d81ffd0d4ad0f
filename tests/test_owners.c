/* Tests of owners: which rule owns a project or job (each step of the specificity order),
 * the explanation in `why` (also for hostile names), the `owners` command reply, clearing. */
#include "owners.h"

#include "strbuf.h"
#include "test.h"

#include <stdbool.h>

/* A NULL-terminated list of strings copied into an owned array. */
static char **list(size_t *n, const char *const *items)
{
	*n = 0;
	if (!items)
		return NULL;
	while (items[*n])
		(*n)++;
	char **v = xcalloc(*n ? *n : 1, sizeof(char *));
	for (size_t i = 0; i < *n; i++)
		v[i] = xstrdup(items[i]);
	return v;
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

struct spec {
	int line;
	const char *const *tenants, *const *pipelines, *const *projects, *const *jobs, *const *users;
	const char *forward_room;
	long long forward_after_s, escalate_after_s;
	const char *runbook, *hint;
};

/* Builds an owners config from specs (count n); clear it with owners_config_clear. */
static struct owners_config build(const struct spec *specs, size_t n)
{
	struct owners_config oc = {xcalloc(n ? n : 1, sizeof(struct owners_rule)), n};
	for (size_t i = 0; i < n; i++) {
		const struct spec *s = &specs[i];
		struct owners_rule *r = &oc.rules[i];
		r->line = s->line;
		r->tenants = list(&r->n_tenants, s->tenants);
		r->pipelines = list(&r->n_pipelines, s->pipelines);
		r->projects = list(&r->n_projects, s->projects);
		r->jobs = list(&r->n_jobs, s->jobs);
		r->users = list(&r->n_users, s->users);
		r->forward_room = xstrdup(s->forward_room);
		r->forward_after_s = s->forward_after_s;
		r->escalate_after_s = s->escalate_after_s ? s->escalate_after_s : -1;
		r->runbook = xstrdup(s->runbook);
		r->hint = xstrdup(s->hint);
	}
	return oc;
}

#define BUILD(...)                                                                                                     \
	build((const struct spec[]){__VA_ARGS__}, sizeof((const struct spec[]){__VA_ARGS__}) / sizeof(struct spec))

/* The line of the winning rule for (tenant, pipeline, project, job), 0 when none;
 * the explanation goes into *why when not NULL (caller frees). */
static int winner(const struct owners_config *oc, const char *tenant, const char *pipeline, const char *project,
		  const char *job, char **why)
{
	struct owners_subject s = {tenant, pipeline, project, job};
	struct strbuf sb = STRBUF_INIT;
	int i = owners_match(oc, &s, &sb);
	/* Without why the answer must be the same. */
	CHECK_INT(owners_match(oc, &s, NULL), i);
	if (why)
		*why = strbuf_detach(&sb);
	strbuf_free(&sb);
	return i < 0 ? 0 : oc->rules[i].line;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- the order ---- */

static void test_a_specific_project_beats_a_generic_one(void)
{
	struct owners_config oc = BUILD({.line = 10, .projects = L("*"), .users = L("@all:x")},
					{.line = 20, .projects = L("org/*"), .users = L("@org:x")},
					{.line = 30, .projects = L("org/repo"), .users = L("@repo:x")});
	char *why;
	CHECK_INT(winner(&oc, "t", "p", "org/repo", NULL, &why), 30);
	CHECK_STR(why, "rule at line 10 matches: project \"org/repo\" matches \"*\"\n"
		       "rule at line 20 matches: project \"org/repo\" matches \"org/*\"\n"
		       "rule at line 30 matches: project \"org/repo\" matches \"org/repo\"\n"
		       "rule at line 30 wins: its projects pattern \"org/repo\" has a longer literal prefix (8) "
		       "than \"org/*\" (4) of rule at line 20\n");
	free(why);
	CHECK_INT(winner(&oc, "t", "p", "org/other", NULL, NULL), 20);
	CHECK_INT(winner(&oc, "t", "p", "elsewhere/repo", NULL, &why), 10);
	CHECK_STR(why, "rule at line 10 matches: project \"elsewhere/repo\" matches \"*\"\n"
		       "rule at line 10 wins: the only rule that matches\n");
	free(why);
	owners_config_clear(&oc);
}

static void test_an_exact_name_beats_a_wildcard_with_the_same_prefix(void)
{
	struct owners_config oc = BUILD({.line = 1, .projects = L("org/repo*"), .users = L("@a:x")},
					{.line = 2, .projects = L("org/repo"), .users = L("@b:x")});
	char *why;
	CHECK_INT(winner(&oc, NULL, NULL, "org/repo", NULL, &why), 2);
	CHECK_CONTAINS(why, "rule at line 2 wins: its projects pattern \"org/repo\" is exact, \"org/repo*\" of "
			    "rule at line 1 is not\n");
	free(why);
	CHECK_INT(winner(&oc, NULL, NULL, "org/repo2", NULL, NULL), 1);
	owners_config_clear(&oc);
	/* '?' and '[' end the literal prefix too; an escaped '*' is literal. */
	oc = BUILD({.line = 1, .projects = L("org/re?o"), .users = L("@a:x")},
		   {.line = 2, .projects = L("org/r[e]po"), .users = L("@b:x")},
		   {.line = 3, .projects = L("org/\\*"), .users = L("@c:x")});
	CHECK_INT(winner(&oc, NULL, NULL, "org/repo", NULL, &why), 1);
	CHECK_CONTAINS(why, "longer literal prefix (6) than \"org/r[e]po\" (5)");
	free(why);
	CHECK_INT(winner(&oc, NULL, NULL, "org/*", NULL, &why), 3);
	free(why);
	owners_config_clear(&oc);
}

static void test_a_job_rule_beats_a_project_rule(void)
{
	/* (a) comes before (b) and (c): a vaguer job rule still wins. */
	struct owners_config oc = BUILD({.line = 10,
					 .tenants = L("scs"),
					 .pipelines = L("periodic"),
					 .projects = L("org/repo"),
					 .users = L("@project:x")},
					{.line = 20, .jobs = L("tox-*"), .users = L("@job:x")});
	char *why;
	CHECK_INT(winner(&oc, "scs", "periodic", "org/repo", "tox-py3", &why), 20);
	CHECK_CONTAINS(why, "rule at line 20 matches: job \"tox-py3\" matches \"tox-*\"\n");
	CHECK_CONTAINS(why, "rule at line 20 wins: it names jobs, rule at line 10 does not\n");
	free(why);
	CHECK_INT(winner(&oc, "scs", "periodic", "org/repo", "linters", NULL), 10);
	CHECK_INT(winner(&oc, "scs", "periodic", "org/repo", NULL, NULL), 10);
	owners_config_clear(&oc);
}

static void test_more_constrained_fields_win(void)
{
	struct owners_config oc = BUILD({.line = 10, .projects = L("org/repo"), .users = L("@a:x")},
					{.line = 20, .pipelines = L("*"), .projects = L("org/*"), .users = L("@b:x")});
	char *why;
	CHECK_INT(winner(&oc, "t", "gate", "org/repo", NULL, &why), 20);
	CHECK_CONTAINS(why, "rule at line 20 wins: it constrains 2 fields, rule at line 10 only 1\n");
	free(why);
	owners_config_clear(&oc);
}

static void test_projects_then_jobs_break_ties(void)
{
	/* Same field count, both with jobs: the projects pattern decides first... */
	struct owners_config oc =
	    BUILD({.line = 10, .projects = L("org/*"), .jobs = L("tox-py3"), .users = L("@a:x")},
		  {.line = 20, .projects = L("org/repo"), .jobs = L("tox-*"), .users = L("@b:x")});
	CHECK_INT(winner(&oc, NULL, NULL, "org/repo", "tox-py3", NULL), 20);
	owners_config_clear(&oc);
	/* ...then the jobs pattern. */
	oc = BUILD({.line = 10, .projects = L("org/*"), .jobs = L("tox-*"), .users = L("@a:x")},
		   {.line = 20, .projects = L("org/*"), .jobs = L("tox-py*"), .users = L("@b:x")});
	char *why;
	CHECK_INT(winner(&oc, NULL, NULL, "org/repo", "tox-py3", &why), 20);
	CHECK_CONTAINS(why, "rule at line 20 wins: its jobs pattern \"tox-py*\" has a longer literal prefix (6) "
			    "than \"tox-*\" (4) of rule at line 10\n");
	free(why);
	owners_config_clear(&oc);
	/* A projects field, even "*", ranks above no projects field. */
	oc = BUILD({.line = 10, .tenants = L("scs"), .jobs = L("lint"), .users = L("@a:x")},
		   {.line = 20, .projects = L("*"), .jobs = L("lint"), .users = L("@b:x")});
	CHECK_INT(winner(&oc, "scs", NULL, "org/repo", "lint", &why), 20);
	CHECK_CONTAINS(why, "rule at line 20 wins: its projects pattern \"*\" is more specific than none "
			    "(rule at line 10 does not constrain projects)\n");
	free(why);
	owners_config_clear(&oc);
}

static void test_the_earlier_rule_wins_a_tie(void)
{
	struct owners_config oc = BUILD({.line = 10, .projects = L("org/*"), .users = L("@first:x")},
					{.line = 20, .projects = L("org/*"), .users = L("@second:x")},
					{.line = 30, .projects = L("org/*"), .users = L("@third:x")});
	char *why;
	CHECK_INT(winner(&oc, NULL, NULL, "org/repo", NULL, &why), 10);
	CHECK_CONTAINS(why, "rule at line 10 wins: as specific as rule at line 20 and earlier in the file\n");
	CHECK_INT(count_lines(why), 4);
	free(why);
	owners_config_clear(&oc);
}

static void test_the_best_pattern_of_a_field_counts(void)
{
	/* A rule listing "*" and "org/repo" is as specific as its best match. */
	struct owners_config oc = BUILD({.line = 10, .projects = L("org/*"), .users = L("@a:x")},
					{.line = 20, .projects = L("*", "org/repo"), .users = L("@b:x")});
	char *why;
	CHECK_INT(winner(&oc, NULL, NULL, "org/repo", NULL, &why), 20);
	CHECK_CONTAINS(why, "rule at line 20 matches: project \"org/repo\" matches \"org/repo\"\n");
	free(why);
	CHECK_INT(winner(&oc, NULL, NULL, "org/other", NULL, &why), 10);
	CHECK_CONTAINS(why, "rule at line 20 matches: project \"org/other\" matches \"*\"\n");
	free(why);
	owners_config_clear(&oc);
}

/* ---- matching ---- */

static void test_tenant_and_pipeline_constraints(void)
{
	struct owners_config oc = BUILD({.line = 5,
					 .tenants = L("scs"),
					 .pipelines = L("periodic-*", "post"),
					 .projects = L("org/*"),
					 .users = L("@scs:x")});
	CHECK_INT(winner(&oc, "scs", "periodic-daily", "org/repo", NULL, NULL), 5);
	CHECK_INT(winner(&oc, "scs", "post", "org/repo", "any", NULL), 5);
	CHECK_INT(winner(&oc, "other", "post", "org/repo", NULL, NULL), 0);
	CHECK_INT(winner(&oc, "scs", "check", "org/repo", NULL, NULL), 0);
	CHECK_INT(winner(&oc, "scs", "post", "else/repo", NULL, NULL), 0);
	/* A missing value is "": no tenant matches only a pattern that matches "". */
	CHECK_INT(winner(&oc, NULL, "post", "org/repo", NULL, NULL), 0);
	char *why;
	CHECK_INT(winner(&oc, "scs", "periodic-daily", "org/repo", NULL, &why), 5);
	CHECK_STR(why, "rule at line 5 matches: tenant \"scs\" matches \"scs\", pipeline \"periodic-daily\" matches "
		       "\"periodic-*\", project \"org/repo\" matches \"org/*\"\n"
		       "rule at line 5 wins: the only rule that matches\n");
	free(why);
	owners_config_clear(&oc);
}

static void test_null_fields_match_as_empty(void)
{
	struct owners_config oc =
	    BUILD({.line = 1, .jobs = L("?*"), .users = L("@a:x")}, {.line = 2, .jobs = L("*"), .users = L("@b:x")});
	char *why;
	CHECK_INT(winner(&oc, NULL, NULL, NULL, NULL, &why), 2);
	CHECK_STR(why, "rule at line 2 matches: job \"\" (missing) matches \"*\"\n"
		       "rule at line 2 wins: the only rule that matches\n");
	free(why);
	CHECK_INT(winner(&oc, NULL, NULL, NULL, "x", NULL), 1);
	/* A NULL subject is all missing. */
	CHECK_INT(owners_match(&oc, NULL, NULL), 1);
	owners_config_clear(&oc);
}

static void test_no_rules_or_no_match(void)
{
	struct owners_config none = {0};
	char *why;
	CHECK_INT(winner(&none, "t", "p", "org/repo", "j", &why), 0);
	CHECK_STR(why, "no owners rule matches (there are no owners rules)\n");
	free(why);
	struct strbuf sb = STRBUF_INIT;
	struct owners_subject s = {0};
	CHECK_INT(owners_match(NULL, &s, &sb), -1);
	CHECK_STR(strbuf_str(&sb), "no owners rule matches (there are no owners rules)\n");
	strbuf_free(&sb);

	struct owners_config oc = BUILD({.line = 3, .projects = L("a/*"), .users = L("@a:x")},
					{.line = 4, .projects = L("b/*"), .users = L("@b:x")});
	CHECK_INT(winner(&oc, "scs", NULL, "org/x", NULL, &why), 0);
	CHECK_STR(why, "no owners rule matches (2 rules tried on tenant \"scs\", pipeline \"\" (missing), "
		       "project \"org/x\", job \"\" (missing))\n");
	free(why);
	owners_config_clear(&oc);
}

static void test_hostile_names_cannot_forge_lines(void)
{
	struct owners_config oc = BUILD({.line = 7, .projects = L("*"), .users = L("@a:x")});
	char *why;
	const char *evil = "org/repo\"\nrule at line 1 wins: \\ \x1b[31m\xe2\x80\xae\xff";
	CHECK_INT(winner(&oc, NULL, NULL, evil, NULL, &why), 7);
	CHECK_STR(why, "rule at line 7 matches: project \"org/repo\\\"\\nrule at line 1 wins: \\\\ "
		       "\\x1b[31m\\u202e\\xff\" matches \"*\"\n"
		       "rule at line 7 wins: the only rule that matches\n");
	free(why);
	/* Long values are cut after 200 characters. */
	char longname[1000];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK_INT(winner(&oc, NULL, NULL, longname, NULL, &why), 7);
	CHECK_INT(count_lines(why), 2);
	CHECK_CONTAINS(why, "\"...");
	CHECK(strlen(why) < 350);
	free(why);
	/* In the no-match line as well. */
	owners_config_clear(&oc);
	oc = BUILD({.line = 7, .projects = L("nothing"), .users = L("@a:x")});
	CHECK_INT(winner(&oc, "t\nrule at line 7 wins", NULL, "p", NULL, &why), 0);
	CHECK_INT(count_lines(why), 1);
	CHECK_CONTAINS(why, "tenant \"t\\nrule at line 7 wins\"");
	free(why);
	owners_config_clear(&oc);
}

static void test_rules_without_line_or_constraints(void)
{
	/* The config always gives a line and a constraint; hand-built rules still explain. */
	struct owners_config oc = BUILD({.line = 0, .users = L("@a:x")});
	char *why;
	CHECK_INT(owners_match(&oc, &(struct owners_subject){0}, NULL), 0);
	CHECK_INT(winner(&oc, "t", NULL, "p", NULL, &why), 0);
	CHECK_STR(why, "rule #1 matches: no constraints, takes everything\nrule #1 wins: the only rule that matches\n");
	free(why);
	owners_config_clear(&oc);
}

/* ---- the command's reply ---- */

static char *describe(const struct owners_config *oc, const char *project, const char *job)
{
	struct owners_subject s = {NULL, NULL, project, job};
	return owners_describe(oc, &s);
}

static void test_describe_names_owners_rule_and_forwarding(void)
{
	struct owners_config oc =
	    BUILD({.line = 42,
		   .projects = L("org/*"),
		   .jobs = L("tox-*"),
		   .users = L("@a:x", "@b:x"),
		   .forward_room = "#provider:x",
		   .forward_after_s = 1800,
		   .runbook = "https://wiki.example/tox",
		   .hint = "Check the mirror first."},
		  {.line = 50, .projects = L("org/*"), .users = L("@a:x", "@b:x", "@c:x"), .escalate_after_s = 7200});
	char *d = describe(&oc, "org/repo", "tox-py3");
	CHECK_STR(d, "org/repo (job tox-py3): owned by @a:x and @b:x, rule at line 42 (projects \"org/*\", jobs "
		     "\"tox-*\"); notices go to #provider:x after 30m. Runbook: https://wiki.example/tox "
		     "Hint: Check the mirror first.");
	free(d);
	d = describe(&oc, "org/repo", "lint");
	CHECK_STR(d, "org/repo (job lint): owned by @a:x, @b:x and @c:x, rule at line 50 (projects \"org/*\"); "
		     "unclaimed for 2h, the on-call is pinged.");
	free(d);
	/* Without a job, the job rule may still apply to some jobs: say so. */
	d = describe(&oc, "org/repo", NULL);
	CHECK_STR(d, "org/repo: owned by @a:x, @b:x and @c:x, rule at line 50 (projects \"org/*\"); unclaimed for "
		     "2h, the on-call is pinged. Other rules apply to some jobs, pipelines or tenants: rule at line "
		     "42 (jobs \"tox-*\").");
	free(d);
	owners_config_clear(&oc);
}

static void test_describe_forward_only_and_at_once(void)
{
	struct owners_config oc =
	    BUILD({.line = 3, .pipelines = L("periodic-*"), .projects = L("org/repo"), .forward_room = "!abc:x"});
	oc.rules[0].escalate_after_s = 0;
	struct owners_subject s = {"scs", "periodic-daily", "org/repo", NULL};
	char *d = owners_describe(&oc, &s);
	CHECK_STR(d, "org/repo (pipeline periodic-daily, tenant scs): nobody is mentioned, rule at line 3 (pipelines "
		     "\"periodic-*\", projects \"org/repo\"); notices go to !abc:x with the alert; the on-call is "
		     "pinged at once.");
	free(d);
	owners_config_clear(&oc);
}

static void test_describe_nobody(void)
{
	struct owners_config none = {0};
	char *d = describe(&none, "org/repo", NULL);
	CHECK_STR(d, "Nobody owns org/repo: no owners rules are configured; failures mention the on-call.");
	free(d);
	struct owners_config oc =
	    BUILD({.line = 9, .projects = L("else/*"), .users = L("@a:x")},
		  {.line = 12, .pipelines = L("periodic"), .projects = L("org/*"), .users = L("@p:x")});
	d = describe(&oc, "org/repo", "tox");
	CHECK_STR(d, "Nobody owns org/repo (job tox): no owners rule matches; failures mention the on-call. Other "
		     "rules apply to some pipelines or tenants: rule at line 12 (pipelines \"periodic\").");
	free(d);
	d = describe(&oc, "org/repo\n@room <b>", NULL);
	CHECK_NOT_CONTAINS(d, "\n");
	CHECK_CONTAINS(d, "Nobody owns org/repo\\n@room <b>:");
	free(d);
	d = owners_describe(NULL, NULL);
	CHECK_STR(d, "Nobody owns (no project): no owners rules are configured; failures mention the on-call.");
	free(d);
	owners_config_clear(&oc);
}

static void test_describe_lists_only_rules_that_would_win(void)
{
	/* With a job named, a tenant rule still loses to the job rule: not worth listing;
	 * a tenant rule with a job would win for that tenant: listed. */
	struct owners_config oc =
	    BUILD({.line = 1, .projects = L("org/*"), .jobs = L("tox"), .users = L("@job:x")},
		  {.line = 2, .tenants = L("scs"), .projects = L("org/repo"), .users = L("@tenant:x")},
		  {.line = 3, .tenants = L("scs"), .projects = L("org/*"), .jobs = L("tox"), .users = L("@both:x")});
	char *d = describe(&oc, "org/repo", "tox");
	CHECK_STR(d, "org/repo (job tox): owned by @job:x, rule at line 1 (projects \"org/*\", jobs \"tox\"). Other "
		     "rules apply to some pipelines or tenants: rule at line 3 (tenants \"scs\").");
	free(d);
	owners_config_clear(&oc);
}

static void test_describe_lists_at_most_five_other_rules(void)
{
	struct owners_config oc =
	    BUILD({.line = 1, .jobs = L("a"), .users = L("@a:x")}, {.line = 2, .jobs = L("b"), .users = L("@a:x")},
		  {.line = 3, .jobs = L("c"), .users = L("@a:x")},
		  {.line = 4, .jobs = L("d", "e", "f", "g"), .users = L("@a:x")},
		  {.line = 5, .jobs = L("h"), .users = L("@a:x")}, {.line = 6, .jobs = L("i"), .users = L("@a:x")},
		  {.line = 7, .jobs = L("j"), .users = L("@a:x")});
	char *d = describe(&oc, "org/repo", NULL);
	CHECK_CONTAINS(d, "rule at line 4 (jobs \"d\" or \"e\" or \"f\" or more); rule at line 5");
	CHECK_NOT_CONTAINS(d, "line 6");
	CHECK_CONTAINS(d, "rule at line 5 (jobs \"h\") and 2 more.");
	free(d);
	owners_config_clear(&oc);
}

/* ---- freeing ---- */

static void test_clearing_is_idempotent(void)
{
	struct owners_config oc = BUILD({.line = 1,
					 .tenants = L("t"),
					 .pipelines = L("p"),
					 .projects = L("o/*"),
					 .jobs = L("j"),
					 .users = L("@a:x"),
					 .forward_room = "#r:x",
					 .runbook = "https://x",
					 .hint = "h"});
	owners_rule_clear(&oc.rules[0]);
	CHECK(oc.rules[0].projects == NULL && oc.rules[0].n_projects == 0 && oc.rules[0].hint == NULL);
	owners_rule_clear(&oc.rules[0]);
	owners_config_clear(&oc);
	CHECK(oc.rules == NULL && oc.n_rules == 0);
	owners_config_clear(&oc);
	owners_config_clear(NULL);
	owners_rule_clear(NULL);
}

int main(void)
{
	RUN(test_a_specific_project_beats_a_generic_one);
	RUN(test_an_exact_name_beats_a_wildcard_with_the_same_prefix);
	RUN(test_a_job_rule_beats_a_project_rule);
	RUN(test_more_constrained_fields_win);
	RUN(test_projects_then_jobs_break_ties);
	RUN(test_the_earlier_rule_wins_a_tie);
	RUN(test_the_best_pattern_of_a_field_counts);
	RUN(test_tenant_and_pipeline_constraints);
	RUN(test_null_fields_match_as_empty);
	RUN(test_no_rules_or_no_match);
	RUN(test_hostile_names_cannot_forge_lines);
	RUN(test_rules_without_line_or_constraints);
	RUN(test_describe_names_owners_rule_and_forwarding);
	RUN(test_describe_forward_only_and_at_once);
	RUN(test_describe_nobody);
	RUN(test_describe_lists_only_rules_that_would_win);
	RUN(test_describe_lists_at_most_five_other_rules);
	RUN(test_clearing_is_idempotent);
	return test_done();
}
