/* chatops_flaky: the answer to `!zuul flaky [PROJECT]`: the jobs of the room's routes that
 * failed and passed again within their last runs, flakiest first, from the runs the bridge
 * recorded (store_flaky.h). */
#include "chatops_internal.h"

#include <stdlib.h>
#include <string.h>

#include "flaky.h"
#include "route.h"
#include "store_flaky.h"
#include "strbuf.h"

/* Jobs listed; the rest are counted. */
#define FLAKY_LIST_MAX 10

/* Whether a failure of this job would be posted into room by one of its routes: the same
 * question route_matches answers for a report, asked of a failure shaped like the job's
 * newest run. */
static bool job_of_room(const struct config *cfg, const char *room, const struct store_job_runs *j)
{
	struct zuul_build build = {.job_name = j->job, .result = "FAILURE", .voting = true};
	struct zuul_event ev = {.action = "failure", .tenant = j->tenant, .pipeline = j->pipeline,
				.buildset_result = "FAILURE", .builds = &build, .n_builds = 1};
	ev.item.project = j->project;
	ev.item.branch = j->branch;
	for (size_t i = 0; i < cfg->n_routes; i++)
		if (strcmp(cfg->routes[i].room, room) == 0 && route_matches(&cfg->routes[i], &ev, NULL))
			return true;
	return false;
}

struct ranked {
	const struct store_job_runs *job;
	struct flaky_score score;
};

static int ranked_cmp(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	int c = flaky_score_cmp(&x->score, &y->score);
	if (c)
		return c;
	c = strcmp(x->job->project, y->job->project);
	return c ? c : strcmp(x->job->job, y->job->job);
}

cJSON *chatops_flaky_content(struct chatops *c, const struct room_state *rs, const char *project)
{
	struct store_job_runs *jobs = NULL;
	size_t n = 0;
	if (store_run_jobs(c->store, project, &jobs, &n) != 0)
		return chatops_notice_new("I cannot read the recorded runs right now (see the bridge's log).");
	struct ranked *list = xcalloc(n ? n : 1, sizeof *list);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct flaky_score s;
		flaky_score(jobs[i].outcomes, jobs[i].n, &s);
		if (s.flaky && job_of_room(c->cfg, rs->room, &jobs[i]))
			list[k++] = (struct ranked){&jobs[i], s};
	}
	qsort(list, k, sizeof *list, ranked_cmp);
	struct strbuf text = STRBUF_INIT, html = STRBUF_INIT;
	if (k == 0) {
		strbuf_printf(&text, "No flaky jobs%s%s among the last runs of this room's routes (a job is flaky "
				     "when it failed at least %d of its last %d runs and passed in between).",
			      project ? " of " : "", project ? project : "", FLAKY_MIN_FAILURES, FLAKY_WINDOW);
		cJSON *content = chatops_notice_new(strbuf_str(&text));
		strbuf_free(&text);
		free(list);
		store_job_runs_free(jobs, n);
		return content;
	}
	strbuf_printf(&text, "Flaky jobs of this room's routes, flakiest first (%zu):", k);
	strbuf_printf(&html, "<p>Flaky jobs of this room's routes, flakiest first (%zu):</p><ul>", k);
	for (size_t i = 0; i < k && i < FLAKY_LIST_MAX; i++) {
		const struct store_job_runs *j = list[i].job;
		const struct flaky_score *s = &list[i].score;
		strbuf_printf(&text, "\n- %s (%s, %s): failed %d of the last %d runs, recovered by itself %d time%s",
			      j->job, j->project, j->branch, s->failures, s->runs, s->recoveries,
			      s->recoveries == 1 ? "" : "s");
		strbuf_puts(&html, "<li><b>");
		strbuf_puts_html(&html, j->job);
		strbuf_puts(&html, "</b> (");
		strbuf_puts_html(&html, j->project);
		strbuf_puts(&html, ", ");
		strbuf_puts_html(&html, j->branch);
		strbuf_printf(&html, "): failed %d of the last %d runs, recovered by itself %d time%s</li>", s->failures,
			      s->runs, s->recoveries, s->recoveries == 1 ? "" : "s");
	}
	strbuf_puts(&html, "</ul>");
	if (k > FLAKY_LIST_MAX) {
		strbuf_printf(&text, "\n... and %zu more.", k - FLAKY_LIST_MAX);
		strbuf_printf(&html, "<p>... and %zu more.</p>", k - FLAKY_LIST_MAX);
	}
	cJSON *content = chatops_notice_new(strbuf_str(&text));
	cJSON_AddStringToObject(content, "format", "org.matrix.custom.html");
	cJSON_AddStringToObject(content, "formatted_body", strbuf_str(&html));
	strbuf_free(&text);
	strbuf_free(&html);
	free(list);
	store_job_runs_free(jobs, n);
	return content;
}
