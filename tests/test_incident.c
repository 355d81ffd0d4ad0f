/* Tests of incident: which failure reports are absorbed into infrastructure incidents (by
 * result and by spread), windows and ids, rendering (escaping, links, size), save/load. */
#include "incident.h"

#include <stdarg.h>
#include <stdint.h>

#include "strbuf.h"
#include "test.h"

#define MIN_MS 60000LL
#define T0 1767664800000LL /* 2026-01-06 02:00:00 UTC */

/* One build of a test report. */
struct tb {
	const char *job;
	const char *result;
	const char *url;     /* web_url */
	const char *project; /* the build's own change's project; NULL: the item's */
	bool non_voting;
};

/* A failure report of project in tenant with builds; the buildset uuid is key, each build's
 * uuid is key-<job>. Caller frees with zuul_event_free. */
static struct zuul_event *report(const char *tenant, const char *project, const char *key, const struct tb *builds,
                                 size_t n)
{
	struct zuul_event *ev = xcalloc(1, sizeof *ev);
	ev->schema = ZUUL_SCHEMA_CURRENT;
	ev->action = xstrdup("failure");
	ev->tenant = xstrdup(tenant);
	ev->pipeline = xstrdup("periodic-daily");
	ev->item.project = xstrdup(project);
	ev->buildset_uuid = xstrdup(key);
	ev->builds = xcalloc(n ? n : 1, sizeof *ev->builds);
	ev->n_builds = n;
	for (size_t i = 0; i < n; i++) {
		struct zuul_build *b = &ev->builds[i];
		struct strbuf uuid = STRBUF_INIT;
		strbuf_printf(&uuid, "%s-%s", key, builds[i].job ? builds[i].job : "nojob");
		b->job_name = xstrdup(builds[i].job);
		b->result = xstrdup(builds[i].result);
		b->web_url = xstrdup(builds[i].url);
		b->uuid = strbuf_detach(&uuid);
		b->voting = !builds[i].non_voting;
		if (builds[i].project) {
			b->change = xcalloc(1, sizeof *b->change);
			b->change->project = xstrdup(builds[i].project);
		}
	}
	return ev;
}

/* Observes a one-build report and returns whether it was absorbed; *out is freed unless kept. */
static int observe1(struct incident_tracker *t, const char *tenant, const char *project, const char *key, const char *job,
                    const char *result, int64_t now, struct incident_outcome *keep)
{
	struct tb b = {job, result, "https://zuul.example.org/t/x/build/1", NULL, false};
	struct zuul_event *ev = report(tenant, project, key, &b, 1);
	struct incident_outcome out;
	int r = incident_observe(t, ev, key, now, &out);
	if (keep)
		*keep = out;
	else
		incident_outcome_free(&out);
	zuul_event_free(ev);
	return r;
}

static const struct incident_options defaults = {NULL, 0, 0, 0};

static char *body_of(const struct incident_tracker *t, const char *id, int64_t now, const char *key)
{
	cJSON *c = incident_content_new(t, id, now);
	if (!c)
		return xstrdup("(no content)");
	char *s = xstrdup(cJSON_GetStringValue(cJSON_GetObjectItem(c, key)));
	cJSON_Delete(c);
	return s ? s : xstrdup("(null)");
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* ------------------------------------------------------------------------ */

static void test_node_failure_on_five_projects_is_one_incident_and_a_sixth_joins(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	char key[32], project[32];
	char *id = NULL;
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "bs%d", i);
		snprintf(project, sizeof project, "org/p%d", i);
		struct incident_outcome out;
		CHECK_INT(observe1(t, "scs", project, key, "deploy", "NODE_FAILURE", T0 + i * MIN_MS, &out), 1);
		CHECK(out.absorbed);
		if (i == 0) {
			CHECK_INT(out.n_opened, 1);
			CHECK_INT(out.n_grown, 0);
			if (out.n_opened)
				id = xstrdup(out.opened[0]);
		} else {
			CHECK_INT(out.n_opened, 0);
			CHECK_INT(out.n_grown, 1);
			if (out.n_grown && id)
				CHECK_STR(out.grown[0], id);
		}
		incident_outcome_free(&out);
	}
	struct incident_outcome out;
	CHECK_INT(observe1(t, "scs", "org/p5", "bs5", "deploy", "NODE_FAILURE", T0 + 20 * MIN_MS, &out), 1);
	CHECK_INT(out.n_opened, 0);
	CHECK_INT(out.n_grown, 1);
	incident_outcome_free(&out);
	struct incident_info info;
	CHECK_INT(incident_get(t, id, &info), 0);
	CHECK_INT(info.n_members, 6);
	CHECK_INT(info.n_projects, 6);
	CHECK_STR(info.cause, "NODE_FAILURE");
	CHECK_STR(info.tenant, "scs");
	CHECK(!info.by_spread);
	CHECK(!info.closed);
	CHECK_INT(info.opened_ms, T0);
	CHECK_INT(info.last_ms, T0 + 20 * MIN_MS);
	free(id);
	incident_tracker_free(t);
}

/* The night: one node pool breaks, 12 periodic jobs of 6 projects fail; an unrelated
 * project's real test failure in the same night keeps its own alert. */
static void test_broken_node_pool_night_is_one_incident_and_a_real_failure_keeps_its_alert(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	char *id = NULL;
	size_t absorbed = 0, opened = 0;
	for (int p = 0; p < 6; p++) {
		char project[32], key[32];
		snprintf(project, sizeof project, "SovereignCloudStack/p%d", p);
		snprintf(key, sizeof key, "night-%d", p);
		struct tb builds[2] = {{"e2e-small", "NODE_FAILURE", "https://zuul.example.org/b/1", NULL, false},
		                       {"e2e-large", "NODE_FAILURE", "https://zuul.example.org/b/2", NULL, false}};
		struct zuul_event *ev = report("scs", project, key, builds, 2);
		struct incident_outcome out;
		absorbed += (size_t)incident_observe(t, ev, key, T0 + p * 3 * MIN_MS, &out);
		opened += out.n_opened;
		if (out.n_opened && !id)
			id = xstrdup(out.opened[0]);
		incident_outcome_free(&out);
		zuul_event_free(ev);
	}
	CHECK_INT(absorbed, 6);
	CHECK_INT(opened, 1);
	struct incident_info info;
	CHECK_INT(incident_get(t, id, &info), 0);
	CHECK_INT(info.n_members, 12);
	CHECK_INT(info.n_projects, 6);

	struct incident_outcome out;
	CHECK_INT(observe1(t, "scs", "other/app", "real-1", "unit-tests", "FAILURE", T0 + 10 * MIN_MS, &out), 0);
	CHECK(!out.absorbed);
	CHECK_INT(out.n_opened, 0);
	CHECK_INT(out.n_grown, 0);
	incident_outcome_free(&out);

	char *body = body_of(t, id, T0 + 16 * MIN_MS, "body");
	CHECK_CONTAINS(body, "12 failed builds in 6 projects");
	CHECK_CONTAINS(body, "SovereignCloudStack/p5: e2e-small");
	CHECK_NOT_CONTAINS(body, "other/app");
	free(body);
	free(id);
	incident_tracker_free(t);
}

static void test_real_failure_of_own_job_is_not_absorbed(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct incident_outcome out;
	CHECK_INT(observe1(t, "scs", "org/a", "k1", "org-a-unit", "FAILURE", T0, &out), 0);
	CHECK(!out.absorbed);
	CHECK_INT(out.n_opened + out.n_grown + out.n_retro, 0);
	incident_outcome_free(&out);
	CHECK_INT(observe1(t, "scs", "org/a", "k2", "org-a-lint", "POST_FAILURE", T0, NULL), 1);
	CHECK_INT(observe1(t, "scs", "org/a", "k3", "org-a-unit", "TIMED_OUT", T0, NULL), 0);
	incident_tracker_free(t);
}

static void test_spread_two_projects_none_third_opens_naming_first_two_fourth_joins(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct incident_outcome out;
	CHECK_INT(observe1(t, "scs", "org/a", "ka", "tox-py311", "FAILURE", T0, &out), 0);
	CHECK_INT(out.n_opened, 0);
	incident_outcome_free(&out);
	CHECK_INT(observe1(t, "scs", "org/b", "kb", "tox-py311", "FAILURE", T0 + 5 * MIN_MS, &out), 0);
	CHECK_INT(out.n_opened, 0);
	incident_outcome_free(&out);
	CHECK_INT(observe1(t, "scs", "org/c", "kc", "tox-py311", "FAILURE", T0 + 10 * MIN_MS, &out), 1);
	CHECK_INT(out.n_opened, 1);
	CHECK_INT(out.n_retro, 2);
	char *id = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("?");
	if (out.n_retro == 2) {
		CHECK_STR(out.retro[0].event_key, "ka");
		CHECK_STR(out.retro[1].event_key, "kb");
		CHECK_STR(out.retro[0].incident_id, id);
		CHECK_STR(out.retro[1].incident_id, id);
	}
	incident_outcome_free(&out);
	struct incident_info info;
	CHECK_INT(incident_get(t, id, &info), 0);
	CHECK_STR(info.cause, "job tox-py311");
	CHECK(info.by_spread);
	CHECK_INT(info.n_members, 3);
	CHECK_INT(info.opened_ms, T0);

	CHECK_INT(observe1(t, "scs", "org/d", "kd", "tox-py311", "FAILURE", T0 + 12 * MIN_MS, &out), 1);
	CHECK_INT(out.n_opened, 0);
	CHECK_INT(out.n_grown, 1);
	CHECK_INT(out.n_retro, 0);
	incident_outcome_free(&out);
	CHECK_INT(incident_get(t, id, &info), 0);
	CHECK_INT(info.n_members, 4);
	CHECK_INT(info.n_projects, 4);
	char *body = body_of(t, id, T0 + 12 * MIN_MS, "body");
	CHECK_CONTAINS(body, "job tox-py311 failed on 4 projects");
	CHECK_CONTAINS(body, "org/a: tox-py311 (FAILURE)");
	free(body);
	/* Another job of the same tenant is not part of it. */
	CHECK_INT(observe1(t, "scs", "org/e", "ke", "docs", "FAILURE", T0 + 13 * MIN_MS, NULL), 0);
	free(id);
	incident_tracker_free(t);
}

static void test_same_project_failing_a_job_thrice_is_no_incident(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	for (int i = 0; i < 3; i++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", i);
		struct incident_outcome out;
		CHECK_INT(observe1(t, "scs", "org/a", key, "tox-py311", "FAILURE", T0 + i * MIN_MS, &out), 0);
		CHECK_INT(out.n_opened, 0);
		incident_outcome_free(&out);
	}
	/* A second project makes two: still under three. */
	CHECK_INT(observe1(t, "scs", "org/b", "kb", "tox-py311", "FAILURE", T0 + 4 * MIN_MS, NULL), 0);
	incident_tracker_free(t);
}

static void test_spread_counts_only_failures_inside_the_window(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	CHECK_INT(observe1(t, "scs", "org/a", "ka", "tox", "FAILURE", T0, NULL), 0);
	CHECK_INT(observe1(t, "scs", "org/b", "kb", "tox", "FAILURE", T0 + 20 * MIN_MS, NULL), 0);
	/* 31 minutes after org/a: only b and c are inside the 30 minutes. */
	CHECK_INT(observe1(t, "scs", "org/c", "kc", "tox", "FAILURE", T0 + 31 * MIN_MS, NULL), 0);
	struct incident_outcome out;
	CHECK_INT(observe1(t, "scs", "org/d", "kd", "tox", "FAILURE", T0 + 32 * MIN_MS, &out), 1);
	CHECK_INT(out.n_opened, 1);
	CHECK_INT(out.n_retro, 2);
	if (out.n_retro == 2) {
		CHECK_STR(out.retro[0].event_key, "kb");
		CHECK_STR(out.retro[1].event_key, "kc");
	}
	incident_outcome_free(&out);
	incident_tracker_free(t);
}

static void test_window_expiry_closes_once_and_a_later_failure_opens_a_new_incident(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct incident_outcome out;
	observe1(t, "scs", "org/a", "k1", "deploy", "DISK_FULL", T0, &out);
	char *first = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("?");
	incident_outcome_free(&out);
	observe1(t, "scs", "org/b", "k2", "deploy", "DISK_FULL", T0 + 10 * MIN_MS, NULL);

	char **ids = NULL;
	CHECK_INT(incident_expire(t, T0 + 39 * MIN_MS, &ids), 0);
	CHECK(ids == NULL);
	char *body = body_of(t, first, T0 + 39 * MIN_MS, "body");
	CHECK_NOT_CONTAINS(body, "closed");
	CHECK_CONTAINS(body, "open until 30 minutes pass without a new failure");
	free(body);

	CHECK_INT(incident_expire(t, T0 + 40 * MIN_MS, &ids), 1);
	if (ids) {
		CHECK_STR(ids[0], first);
		CHECK(ids[1] == NULL);
	}
	incident_ids_free(ids);
	CHECK_INT(incident_expire(t, T0 + 41 * MIN_MS, &ids), 0);
	struct incident_info info;
	CHECK_INT(incident_get(t, first, &info), 0);
	CHECK(info.closed);
	body = body_of(t, first, T0 + 41 * MIN_MS, "body");
	CHECK_CONTAINS(body, "closed: no new failures since 02:10 UTC");
	free(body);
	body = body_of(t, first, T0 + 41 * MIN_MS, "formatted_body");
	CHECK_CONTAINS(body, "<em>closed: no new failures since 02:10 UTC</em>");
	free(body);

	CHECK_INT(observe1(t, "scs", "org/c", "k3", "deploy", "DISK_FULL", T0 + 50 * MIN_MS, &out), 1);
	CHECK_INT(out.n_opened, 1);
	CHECK_INT(out.n_grown, 0);
	if (out.n_opened)
		CHECK(strcmp(out.opened[0], first) != 0);
	incident_outcome_free(&out);
	CHECK_INT(incident_get(t, first, &info), 0);
	CHECK_INT(info.n_members, 2);
	free(first);
	incident_tracker_free(t);
}

/* Without incident_expire in between, a failure after the window still opens a new incident,
 * and the old one is reported closed once afterwards. */
static void test_observe_after_the_window_closes_the_old_incident_itself(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct incident_outcome out;
	observe1(t, "scs", "org/a", "k1", "deploy", "LOST", T0, &out);
	char *first = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("?");
	incident_outcome_free(&out);
	observe1(t, "scs", "org/a", "k2", "deploy", "LOST", T0 + 30 * MIN_MS, &out);
	CHECK_INT(out.n_opened, 1);
	incident_outcome_free(&out);
	/* The new one closes at T0+60; the old one is due for its report. */
	char **ids = NULL;
	CHECK_INT(incident_expire(t, T0 + 31 * MIN_MS, &ids), 1);
	if (ids)
		CHECK_STR(ids[0], first);
	incident_ids_free(ids);
	CHECK_INT(incident_expire(t, T0 + 32 * MIN_MS, NULL), 0);
	free(first);
	incident_tracker_free(t);
}

static void test_closed_incidents_are_forgotten_a_day_after_closing(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct incident_outcome out;
	observe1(t, "scs", "org/a", "k1", "deploy", "LOST", T0, &out);
	char *id = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("?");
	incident_outcome_free(&out);
	struct incident_info info;
	CHECK_INT(incident_expire(t, T0 + 30 * MIN_MS, NULL), 1);
	CHECK_INT(incident_get(t, id, &info), 0);
	CHECK_INT(incident_expire(t, T0 + 30 * MIN_MS + 23 * 60 * MIN_MS, NULL), 0);
	CHECK_INT(incident_get(t, id, &info), 0);
	CHECK_INT(incident_expire(t, T0 + 30 * MIN_MS + 24 * 60 * MIN_MS, NULL), 0);
	CHECK_INT(incident_get(t, id, &info), -1);
	CHECK(incident_content_new(t, id, T0) == NULL);
	free(id);
	incident_tracker_free(t);
}

static void test_tenants_have_separate_incidents_and_spreads(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct incident_outcome out;
	observe1(t, "scs", "org/a", "k1", "deploy", "NODE_FAILURE", T0, &out);
	CHECK_INT(out.n_opened, 1);
	incident_outcome_free(&out);
	observe1(t, "openstack", "org/a", "k2", "deploy", "NODE_FAILURE", T0, &out);
	CHECK_INT(out.n_opened, 1);
	incident_outcome_free(&out);
	/* A spread needs three projects of the same tenant. */
	CHECK_INT(observe1(t, "scs", "org/x", "s1", "tox", "FAILURE", T0, NULL), 0);
	CHECK_INT(observe1(t, "scs", "org/y", "s2", "tox", "FAILURE", T0, NULL), 0);
	CHECK_INT(observe1(t, "openstack", "org/z", "s3", "tox", "FAILURE", T0, NULL), 0);
	CHECK_INT(observe1(t, "scs", "org/z", "s4", "tox", "FAILURE", T0, NULL), 1);
	incident_tracker_free(t);
}

/* A report with an infra build and a real failure keeps its alert; its infra build is still
 * listed in the incident. */
static void test_mixed_report_is_not_absorbed_but_its_infra_build_is_a_member(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct tb builds[3] = {{"deploy", "NODE_FAILURE", NULL, NULL, false},
	                       {"unit", "FAILURE", NULL, NULL, false},
	                       {"lint", "SUCCESS", NULL, NULL, false}};
	struct zuul_event *ev = report("scs", "org/a", "mixed", builds, 3);
	struct incident_outcome out;
	CHECK_INT(incident_observe(t, ev, "mixed", T0, &out), 0);
	CHECK(!out.absorbed);
	CHECK_INT(out.n_opened, 1);
	char *id = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("?");
	incident_outcome_free(&out);
	zuul_event_free(ev);
	struct incident_info info;
	CHECK_INT(incident_get(t, id, &info), 0);
	CHECK_INT(info.n_members, 1);
	char *body = body_of(t, id, T0, "body");
	CHECK_CONTAINS(body, "org/a: deploy");
	CHECK_NOT_CONTAINS(body, "unit");
	free(body);
	free(id);
	incident_tracker_free(t);
}

/* An earlier report with another real failure keeps its alert when the spread opens: it is
 * not named in retro, but its build of the job is a member. */
static void test_spread_does_not_retro_absorb_a_report_with_another_failure(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct tb builds[2] = {{"tox", "FAILURE", NULL, NULL, false}, {"own-e2e", "FAILURE", NULL, NULL, false}};
	struct zuul_event *ev = report("scs", "org/a", "ka", builds, 2);
	struct incident_outcome out;
	CHECK_INT(incident_observe(t, ev, "ka", T0, &out), 0);
	incident_outcome_free(&out);
	zuul_event_free(ev);
	observe1(t, "scs", "org/b", "kb", "tox", "FAILURE", T0 + MIN_MS, NULL);
	CHECK_INT(observe1(t, "scs", "org/c", "kc", "tox", "FAILURE", T0 + 2 * MIN_MS, &out), 1);
	CHECK_INT(out.n_retro, 1);
	if (out.n_retro)
		CHECK_STR(out.retro[0].event_key, "kb");
	struct incident_info info;
	CHECK_INT(incident_get(t, out.n_opened ? out.opened[0] : "?", &info), 0);
	CHECK_INT(info.n_members, 3);
	incident_outcome_free(&out);
	incident_tracker_free(t);
}

static void test_redelivered_report_is_one_member_and_no_growth(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct incident_outcome out;
	observe1(t, "scs", "org/a", "k1", "deploy", "NODE_FAILURE", T0, &out);
	char *id = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("?");
	incident_outcome_free(&out);
	CHECK_INT(observe1(t, "scs", "org/a", "k1", "deploy", "NODE_FAILURE", T0 + MIN_MS, &out), 1);
	CHECK_INT(out.n_opened + out.n_grown, 0);
	incident_outcome_free(&out);
	struct incident_info info;
	CHECK_INT(incident_get(t, id, &info), 0);
	CHECK_INT(info.n_members, 1);
	CHECK_INT(info.last_ms, T0);
	/* A redelivered spread report does not make its project count twice. */
	observe1(t, "scs", "org/x", "s1", "tox", "FAILURE", T0, NULL);
	observe1(t, "scs", "org/x", "s1", "tox", "FAILURE", T0, NULL);
	CHECK_INT(observe1(t, "scs", "org/y", "s2", "tox", "FAILURE", T0, NULL), 0);
	free(id);
	incident_tracker_free(t);
}

static void test_report_without_failed_builds_is_not_absorbed(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct zuul_event *ev = report("scs", "org/a", "mc", NULL, 0);
	struct incident_outcome out;
	CHECK_INT(incident_observe(t, ev, "mc", T0, &out), 0);
	CHECK_INT(out.n_opened + out.n_grown + out.n_retro, 0);
	incident_outcome_free(&out);
	zuul_event_free(ev);
	struct tb fine[3] = {{"a", "SUCCESS", NULL, NULL, false}, {"b", "ABORTED", NULL, NULL, false},
	                     {"c", NULL, NULL, NULL, false}};
	ev = report("scs", "org/a", "ok", fine, 3);
	CHECK_INT(incident_observe(t, ev, "ok", T0, &out), 0);
	incident_outcome_free(&out);
	zuul_event_free(ev);
	CHECK_INT(incident_observe(t, NULL, "x", T0, &out), 0);
	incident_outcome_free(&out);
	incident_tracker_free(t);
}

/* Non-voting builds count like voting ones: a non-voting real failure keeps the alert. */
static void test_non_voting_builds_count_like_voting_ones(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct tb a[2] = {{"deploy", "NODE_FAILURE", NULL, NULL, false}, {"experimental", "NODE_FAILURE", NULL, NULL, true}};
	struct zuul_event *ev = report("scs", "org/a", "k1", a, 2);
	struct incident_outcome out;
	CHECK_INT(incident_observe(t, ev, "k1", T0, &out), 1);
	incident_outcome_free(&out);
	zuul_event_free(ev);
	struct tb b[2] = {{"deploy", "NODE_FAILURE", NULL, NULL, false}, {"experimental", "FAILURE", NULL, NULL, true}};
	ev = report("scs", "org/b", "k2", b, 2);
	CHECK_INT(incident_observe(t, ev, "k2", T0, &out), 0);
	incident_outcome_free(&out);
	zuul_event_free(ev);
	incident_tracker_free(t);
}

/* A build's own change names its project (an item with several changes). */
static void test_build_project_comes_from_the_builds_own_change(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct tb b[3] = {{"tox", "FAILURE", NULL, "org/one", false},
	                  {"tox2", "FAILURE", NULL, "org/two", false},
	                  {"tox3", "FAILURE", NULL, "org/three", false}};
	struct zuul_event *ev = report("scs", "org/item", "k1", b, 3);
	struct incident_outcome out;
	CHECK_INT(incident_observe(t, ev, "k1", T0, &out), 0);
	incident_outcome_free(&out);
	zuul_event_free(ev);
	/* Three different projects of one job within one report do spread. */
	struct tb c[3] = {{"tox", "FAILURE", NULL, "org/one", false},
	                  {"tox", "FAILURE", NULL, "org/two", false},
	                  {"tox", "FAILURE", NULL, "org/three", false}};
	ev = report("scs", "org/item", "k2", c, 3);
	ev->builds[1].uuid[0] = 'X';
	ev->builds[2].uuid[0] = 'Y';
	CHECK_INT(incident_observe(t, ev, "k2", T0, &out), 1);
	CHECK_INT(out.n_opened, 1);
	struct incident_info info;
	CHECK_INT(incident_get(t, out.n_opened ? out.opened[0] : "?", &info), 0);
	CHECK_INT(info.n_projects, 3);
	CHECK_INT(out.n_retro, 0); /* k1 also had tox2 and tox3 */
	incident_outcome_free(&out);
	zuul_event_free(ev);
	incident_tracker_free(t);
}

static void test_ids_are_txn_safe_distinct_and_stable(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct incident_outcome out;
	observe1(t, "tenant with spaces/and\"quotes<>", "org/a", "k1", "deploy", "NODE_FAILURE", T0, &out);
	CHECK_INT(out.n_opened, 1);
	char *a = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("");
	incident_outcome_free(&out);
	observe1(t, "tenant with spaces/and\"quotes<>", "org/a", "k2", "deploy", "EXCEPTION", T0, &out);
	char *b = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("");
	incident_outcome_free(&out);
	CHECK(strcmp(a, b) != 0);
	CHECK(strlen(a) > 0 && strlen(a) <= 120);
	for (const char *p = a; *p; p++)
		CHECK(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p) != NULL);
	CHECK_CONTAINS(a, "NODE_FAILURE");
	CHECK_CONTAINS(a, "-1767664800000");
	/* The same inputs give the same id in another tracker. */
	struct incident_tracker *t2 = incident_tracker_new(&defaults);
	observe1(t2, "tenant with spaces/and\"quotes<>", "org/z", "k9", "other", "NODE_FAILURE", T0, &out);
	if (out.n_opened)
		CHECK_STR(out.opened[0], a);
	incident_outcome_free(&out);
	/* Tenants that sanitise alike still differ by the hash. */
	observe1(t2, "tenant with spaces/and\"quotes<!", "org/z", "k9", "other", "NODE_FAILURE", T0, &out);
	if (out.n_opened)
		CHECK(strcmp(out.opened[0], a) != 0);
	incident_outcome_free(&out);
	incident_tracker_free(t2);
	free(a);
	free(b);
	incident_tracker_free(t);
}

static void test_hostile_names_are_escaped_and_unsafe_urls_not_linked(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct tb b[4] = {
		{"<script>alert(1)</script>", "NODE_FAILURE", "javascript:alert(1)", NULL, false},
		{"job\"onmouseover", "NODE_FAILURE", "https://ok.example/a?x=1&y=\"2\"", NULL, false},
		{"good", "NODE_FAILURE", "https://zuul.example.org/t/scs/build/abc?x=1&y=2", NULL, false},
		{"ctl\x1b[31m\r\nforged", "NODE_FAILURE", " https://lead.space/", NULL, false},
	};
	struct zuul_event *ev = report("<b>tenant</b>", "evil/<img src=x onerror=alert(1)>", "hostile", b, 4);
	ev->builds[0].log_url = xstrdup("data:text/html,<script>");
	struct incident_outcome out;
	CHECK_INT(incident_observe(t, ev, "hostile", T0, &out), 1);
	char *id = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("?");
	incident_outcome_free(&out);
	zuul_event_free(ev);
	char *html = body_of(t, id, T0, "formatted_body");
	CHECK_NOT_CONTAINS(html, "<script>");
	CHECK_NOT_CONTAINS(html, "<img");
	CHECK_NOT_CONTAINS(html, "<b>tenant");
	CHECK_NOT_CONTAINS(html, "javascript:");
	CHECK_NOT_CONTAINS(html, "data:");
	CHECK_NOT_CONTAINS(html, "ok.example");
	CHECK_NOT_CONTAINS(html, "lead.space");
	CHECK_NOT_CONTAINS(html, "\x1b");
	CHECK_NOT_CONTAINS(html, "\r");
	CHECK_CONTAINS(html, "&lt;script&gt;alert(1)&lt;/script&gt;");
	CHECK_CONTAINS(html, "job&quot;onmouseover");
	CHECK_CONTAINS(html, "&lt;b&gt;tenant&lt;/b&gt;");
	CHECK_CONTAINS(html, "<a href=\"https://zuul.example.org/t/scs/build/abc?x=1&amp;y=2\">good</a>");
	CHECK_INT(count_of(html, "<a "), 1);
	free(html);
	char *body = body_of(t, id, T0, "body");
	CHECK_CONTAINS(body, "good <https://zuul.example.org/t/scs/build/abc?x=1&y=2>");
	CHECK_CONTAINS(body, "ctl?[31m??forged");
	CHECK_NOT_CONTAINS(body, "javascript:");
	free(body);
	free(id);
	incident_tracker_free(t);
}

/* log_url is the link when web_url is missing or unsafe. */
static void test_log_url_links_when_web_url_is_missing(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct tb b = {"deploy", "NODE_FAILURE", NULL, NULL, false};
	struct zuul_event *ev = report("scs", "org/a", "k", &b, 1);
	ev->builds[0].log_url = xstrdup("https://logs.example.org/a/b/");
	struct incident_outcome out;
	incident_observe(t, ev, "k", T0, &out);
	char *html = body_of(t, out.n_opened ? out.opened[0] : "?", T0, "formatted_body");
	CHECK_CONTAINS(html, "<a href=\"https://logs.example.org/a/b/\">deploy</a>");
	free(html);
	incident_outcome_free(&out);
	zuul_event_free(ev);
	incident_tracker_free(t);
}

static void test_huge_incident_is_capped_and_its_content_stays_small(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	char *id = NULL;
	struct strbuf longname = STRBUF_INIT, longurl = STRBUF_INIT;
	for (int i = 0; i < 300; i++)
		strbuf_puts(&longname, "\xc3\xa9"); /* é: 600 bytes, cut at a character boundary */
	strbuf_puts(&longurl, "https://zuul.example.org/");
	for (int i = 0; i < 300; i++)
		strbuf_puts(&longurl, "abcdefghij");
	for (int i = 0; i < 620; i++) {
		char key[32], project[700];
		snprintf(key, sizeof key, "k%d", i);
		snprintf(project, sizeof project, "%s/%d", strbuf_str(&longname), i);
		struct tb b = {"deploy&co", "NODE_FAILURE", strbuf_str(&longurl), NULL, false};
		struct zuul_event *ev = report("scs", project, key, &b, 1);
		struct incident_outcome out;
		CHECK_INT(incident_observe(t, ev, key, T0 + i * 1000, &out), 1);
		if (!id && out.n_opened)
			id = xstrdup(out.opened[0]);
		incident_outcome_free(&out);
		zuul_event_free(ev);
	}
	struct incident_info info;
	CHECK_INT(incident_get(t, id, &info), 0);
	CHECK_INT(info.n_members, 620);
	CHECK_INT(info.n_projects, INCIDENT_MEMBERS_MAX);
	cJSON *c = incident_content_new(t, id, T0);
	char *printed = cJSON_PrintUnformatted(c);
	CHECK(printed && strlen(printed) < 50000);
	const char *body = cJSON_GetStringValue(cJSON_GetObjectItem(c, "body"));
	CHECK_CONTAINS(body, "620 failed builds");
	CHECK_CONTAINS(body, " more");
	CHECK_CONTAINS(body, "...");
	/* The shown lines plus "and N more" account for all 620. */
	size_t shown = count_of(body, "deploy&co");
	char want[64];
	snprintf(want, sizeof want, "and %zu more", 620 - shown);
	CHECK_CONTAINS(body, want);
	CHECK(shown > 5);
	const char *html = cJSON_GetStringValue(cJSON_GetObjectItem(c, "formatted_body"));
	CHECK_CONTAINS(html, want);
	CHECK_CONTAINS(html, "deploy&amp;co");
	cJSON_free(printed);
	cJSON_Delete(c);
	strbuf_free(&longname);
	strbuf_free(&longurl);
	free(id);
	incident_tracker_free(t);
}

static void test_save_and_load_keep_incidents_members_and_spread_history(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct incident_outcome out;
	observe1(t, "scs", "org/a", "k1", "deploy", "NODE_FAILURE", T0, &out);
	char *id = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("?");
	incident_outcome_free(&out);
	observe1(t, "scs", "org/b", "k2", "deploy", "NODE_FAILURE", T0 + MIN_MS, NULL);
	observe1(t, "scs", "org/x", "s1", "tox", "FAILURE", T0 + 2 * MIN_MS, NULL);
	observe1(t, "scs", "org/y", "s2", "tox", "FAILURE", T0 + 3 * MIN_MS, NULL);
	/* One closed and reported incident too. */
	observe1(t, "other", "org/o", "o1", "deploy", "LOST", T0 - 40 * MIN_MS, NULL);
	CHECK_INT(incident_expire(t, T0 + 3 * MIN_MS, NULL), 1);
	char *saved = incident_tracker_save(t);
	char *content_before = body_of(t, id, T0 + 4 * MIN_MS, "formatted_body");

	struct incident_tracker *u = incident_tracker_new(&defaults);
	CHECK_INT(incident_tracker_load(u, saved), 0);
	char *saved_again = incident_tracker_save(u);
	CHECK_STR(saved_again, saved);
	char *content_after = body_of(u, id, T0 + 4 * MIN_MS, "formatted_body");
	CHECK_STR(content_after, content_before);
	/* The closed one is not reported again; the spread history still counts. */
	CHECK_INT(incident_expire(u, T0 + 4 * MIN_MS, NULL), 0);
	CHECK_INT(observe1(u, "scs", "org/z", "s3", "tox", "FAILURE", T0 + 4 * MIN_MS, &out), 1);
	CHECK_INT(out.n_retro, 2);
	incident_outcome_free(&out);
	/* The open one keeps growing under its id. */
	CHECK_INT(observe1(u, "scs", "org/c", "k3", "deploy", "NODE_FAILURE", T0 + 5 * MIN_MS, &out), 1);
	CHECK_INT(out.n_grown, 1);
	if (out.n_grown)
		CHECK_STR(out.grown[0], id);
	incident_outcome_free(&out);
	free(saved);
	free(saved_again);
	free(content_before);
	free(content_after);
	free(id);
	incident_tracker_free(u);
	incident_tracker_free(t);
}

static void test_loading_garbage_fails_and_keeps_the_state(void)
{
	struct incident_tracker *t = incident_tracker_new(&defaults);
	struct incident_outcome out;
	observe1(t, "scs", "org/a", "k1", "deploy", "NODE_FAILURE", T0, &out);
	char *id = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("?");
	incident_outcome_free(&out);
	char *before = incident_tracker_save(t);
	static const char *const bad[] = {
		NULL,
		"",
		"not json",
		"[]",
		"{\"version\":2,\"incidents\":[],\"recent\":[]}",
		"{\"version\":1,\"incidents\":{},\"recent\":[]}",
		"{\"version\":1,\"incidents\":[{\"id\":\"x\"}],\"recent\":[]}",
		"{\"version\":1,\"incidents\":[1],\"recent\":[]}",
		"{\"version\":1,\"incidents\":[],\"recent\":[{\"event_key\":\"k\",\"tenant\":\"t\",\"at_ms\":-5,\"builds\":[]}]}",
		"{\"version\":1,\"incidents\":[{\"id\":\"a\",\"tenant\":\"t\",\"cause\":\"LOST\",\"by_spread\":false,\"job\":null,"
		"\"opened_ms\":1,\"last_ms\":1,\"closed\":false,\"close_reported\":false,\"n_more\":0,"
		"\"members\":[{\"project\":\"p\",\"job\":7}]}],\"recent\":[]}",
		"{\"version\":1,\"incidents\":[{\"id\":\"a\",\"tenant\":\"t\",\"cause\":\"LOST\",\"by_spread\":false,\"job\":null,"
		"\"opened_ms\":1,\"last_ms\":1,\"closed\":false,\"close_reported\":false,\"n_more\":0,\"members\":[]},"
		"{\"id\":\"a\",\"tenant\":\"t\",\"cause\":\"LOST\",\"by_spread\":false,\"job\":null,"
		"\"opened_ms\":1,\"last_ms\":1,\"closed\":false,\"close_reported\":false,\"n_more\":0,\"members\":[]}],"
		"\"recent\":[]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (incident_tracker_load(t, bad[i]) != -1) {
			test_current_failed = 1;
			printf("# bad state %zu loaded: %s\n", i, bad[i] ? bad[i] : "(null)");
		}
	}
	char *after = incident_tracker_save(t);
	CHECK_STR(after, before);
	struct incident_info info;
	CHECK_INT(incident_get(t, id, &info), 0);
	/* An empty saved state loads and empties the tracker. */
	CHECK_INT(incident_tracker_load(t, "{\"version\":1,\"incidents\":[],\"recent\":[]}"), 0);
	CHECK_INT(incident_get(t, id, &info), -1);
	free(before);
	free(after);
	free(id);
	incident_tracker_free(t);
}

static void test_options_reload_changes_list_window_and_threshold(void)
{
	static const char *const only_disk[] = {"DISK_FULL"};
	struct incident_options o = {only_disk, 1, 10 * 60, 2};
	struct incident_tracker *t = incident_tracker_new(&o);
	CHECK_INT(observe1(t, "scs", "org/a", "k1", "deploy", "NODE_FAILURE", T0, NULL), 0);
	CHECK_INT(observe1(t, "scs", "org/a", "k2", "deploy", "DISK_FULL", T0, NULL), 1);
	/* Threshold 2: two projects are a spread. */
	CHECK_INT(observe1(t, "scs", "org/x", "s1", "tox", "FAILURE", T0, NULL), 0);
	CHECK_INT(observe1(t, "scs", "org/y", "s2", "tox", "FAILURE", T0, NULL), 1);
	/* Window of 10 minutes. */
	CHECK_INT(incident_expire(t, T0 + 10 * MIN_MS, NULL), 2);

	incident_tracker_set_options(t, &defaults);
	CHECK_INT(observe1(t, "scs", "org/a", "k3", "deploy", "NODE_FAILURE", T0 + 11 * MIN_MS, NULL), 1);
	CHECK_INT(observe1(t, "scs", "org/x", "s3", "tox", "FAILURE", T0 + 11 * MIN_MS, NULL), 0);
	CHECK_INT(observe1(t, "scs", "org/y", "s4", "tox", "FAILURE", T0 + 11 * MIN_MS, NULL), 0);
	CHECK_INT(incident_expire(t, T0 + 40 * MIN_MS, NULL), 0);
	CHECK_INT(incident_expire(t, T0 + 41 * MIN_MS, NULL), 1);

	/* Spread off; no infra results at all. */
	static const char *const none[] = {NULL};
	struct incident_options off = {none, 0, 0, -1};
	incident_tracker_set_options(t, &off);
	CHECK_INT(observe1(t, "scs", "org/a", "k4", "deploy", "NODE_FAILURE", T0 + 50 * MIN_MS, NULL), 0);
	CHECK_INT(observe1(t, "scs", "org/p", "o1", "j", "FAILURE", T0 + 50 * MIN_MS, NULL), 0);
	CHECK_INT(observe1(t, "scs", "org/q", "o2", "j", "FAILURE", T0 + 50 * MIN_MS, NULL), 0);
	CHECK_INT(observe1(t, "scs", "org/r", "o3", "j", "FAILURE", T0 + 50 * MIN_MS, NULL), 0);
	incident_tracker_free(t);

	/* A threshold of 1 is taken as 2: one project alone never spreads. */
	struct incident_options one = {NULL, 0, 0, 1};
	t = incident_tracker_new(&one);
	CHECK_INT(observe1(t, "scs", "org/a", "k1", "tox", "FAILURE", T0, NULL), 0);
	CHECK_INT(observe1(t, "scs", "org/b", "k2", "tox", "FAILURE", T0, NULL), 1);
	incident_tracker_free(t);
	/* NULL options are the defaults. */
	t = incident_tracker_new(NULL);
	CHECK_INT(observe1(t, "scs", "org/a", "k1", "deploy", "RETRY_LIMIT", T0, NULL), 1);
	CHECK_INT(observe1(t, "scs", "org/a", "k2", "deploy", "FAILURE", T0, NULL), 0);
	incident_tracker_free(t);
}

static char *read_payload(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof path, "tests/data/payloads/%s", name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		strbuf_append(&sb, buf, n);
	fclose(f);
	*len = sb.len;
	return strbuf_detach(&sb);
}

/* Real decoded payloads: a NODE_FAILURE report is absorbed and links its build page; a real
 * FAILURE report is not. */
static void test_real_payloads(void)
{
	struct incident_tracker *t = incident_tracker_new(NULL);
	size_t len = 0;
	char *p = read_payload("result-node-failure.json", &len);
	CHECK(p != NULL);
	char err[128];
	struct zuul_event *ev = p ? zuul_event_parse(p, len, err, sizeof err) : NULL;
	CHECK(ev != NULL);
	if (ev) {
		char *key = zuul_event_key(ev, p, len);
		struct incident_outcome out;
		CHECK_INT(incident_observe(t, ev, key, T0, &out), 1);
		CHECK_INT(out.n_opened, 1);
		char *html = body_of(t, out.n_opened ? out.opened[0] : "?", T0, "formatted_body");
		CHECK_CONTAINS(html, "<a href=\"https://zuul.example.org/t/scs/build/f7122be744bc23e66d526a6b357fb67c\">"
		                     "k8s-capi-e2e-node_failure</a>");
		CHECK_CONTAINS(html, "SovereignCloudStack/k8s-cluster-api-provider");
		CHECK_CONTAINS(html, "<strong>NODE_FAILURE</strong>");
		free(html);
		incident_outcome_free(&out);
		free(key);
	}
	zuul_event_free(ev);
	free(p);

	p = read_payload("result-failure.json", &len);
	ev = p ? zuul_event_parse(p, len, err, sizeof err) : NULL;
	CHECK(ev != NULL);
	if (ev) {
		struct incident_outcome out;
		CHECK_INT(incident_observe(t, ev, "real", T0, &out), 0);
		incident_outcome_free(&out);
	}
	zuul_event_free(ev);
	free(p);
	incident_tracker_free(t);
}

static void test_content_has_the_matrix_fields_and_times(void)
{
	struct incident_tracker *t = incident_tracker_new(NULL);
	struct incident_outcome out;
	observe1(t, "scs", "org/a", "k1", "deploy", "EXCEPTION", T0 + 5 * MIN_MS, &out);
	char *id = out.n_opened ? xstrdup(out.opened[0]) : xstrdup("?");
	incident_outcome_free(&out);
	observe1(t, "scs", "org/a", "k2", "deploy2", "EXCEPTION", T0 + 17 * MIN_MS, NULL);
	cJSON *c = incident_content_new(t, id, T0 + 18 * MIN_MS);
	/* Nobody is pinged until the on-call is mentioned: a notice with empty m.mentions, so
	 * project or job names cannot trigger the legacy keyword push rules. */
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(c, "msgtype")), "m.notice");
	char *mentions = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "m.mentions"));
	CHECK_STR(mentions, "{}");
	cJSON_free(mentions);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(c, "format")), "org.matrix.custom.html");
	const char *body = cJSON_GetStringValue(cJSON_GetObjectItem(c, "body"));
	CHECK_CONTAINS(body, "Infrastructure incident in tenant scs: EXCEPTION");
	CHECK_CONTAINS(body, "2 failed builds in 1 project, first seen 2026-01-06 02:05 UTC, last seen 02:17 UTC");
	CHECK_CONTAINS(body, "- org/a: deploy <https://zuul.example.org/t/x/build/1>, deploy2");
	CHECK(body && body[strlen(body) - 1] != '\n');
	cJSON_Delete(c);
	/* Rendered after the window passed but before incident_expire: shown closed already. */
	char *b2 = body_of(t, id, T0 + 47 * MIN_MS, "body");
	CHECK_CONTAINS(b2, "closed: no new failures since 02:17 UTC");
	free(b2);
	CHECK(incident_content_new(t, "no-such-id", T0) == NULL);
	struct incident_info info;
	CHECK_INT(incident_get(t, "no-such-id", &info), -1);
	CHECK_INT(incident_get(t, NULL, &info), -1);
	free(id);
	incident_tracker_free(t);
}

int main(void)
{
	RUN(test_node_failure_on_five_projects_is_one_incident_and_a_sixth_joins);
	RUN(test_broken_node_pool_night_is_one_incident_and_a_real_failure_keeps_its_alert);
	RUN(test_real_failure_of_own_job_is_not_absorbed);
	RUN(test_spread_two_projects_none_third_opens_naming_first_two_fourth_joins);
	RUN(test_same_project_failing_a_job_thrice_is_no_incident);
	RUN(test_spread_counts_only_failures_inside_the_window);
	RUN(test_window_expiry_closes_once_and_a_later_failure_opens_a_new_incident);
	RUN(test_observe_after_the_window_closes_the_old_incident_itself);
	RUN(test_closed_incidents_are_forgotten_a_day_after_closing);
	RUN(test_tenants_have_separate_incidents_and_spreads);
	RUN(test_mixed_report_is_not_absorbed_but_its_infra_build_is_a_member);
	RUN(test_spread_does_not_retro_absorb_a_report_with_another_failure);
	RUN(test_redelivered_report_is_one_member_and_no_growth);
	RUN(test_report_without_failed_builds_is_not_absorbed);
	RUN(test_non_voting_builds_count_like_voting_ones);
	RUN(test_build_project_comes_from_the_builds_own_change);
	RUN(test_ids_are_txn_safe_distinct_and_stable);
	RUN(test_hostile_names_are_escaped_and_unsafe_urls_not_linked);
	RUN(test_log_url_links_when_web_url_is_missing);
	RUN(test_huge_incident_is_capped_and_its_content_stays_small);
	RUN(test_save_and_load_keep_incidents_members_and_spread_history);
	RUN(test_loading_garbage_fails_and_keeps_the_state);
	RUN(test_options_reload_changes_list_window_and_threshold);
	RUN(test_real_payloads);
	RUN(test_content_has_the_matrix_fields_and_times);
	return test_done();
}
