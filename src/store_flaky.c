/* store_flaky: the job_run table (see store.c's schema version 5). Its statements are
 * prepared on first use into slots the store finalizes when it closes: a report records
 * each of its builds, and preparing anew each time would cost a burst its throughput. */
#include "store_flaky.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store_internal.h"
#include "strbuf.h"

enum { ST_RECORD, ST_SET_RESULT, ST_HISTORY, ST_PRUNE, ST_JOBS };

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC);
}

static char *column_dup(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return xstrdup(t ? (const char *)t : "");
}

int store_run_record(struct store *st, const struct store_run *run)
{
	if (!run->build_uuid || !*run->build_uuid)
		return -1;
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_prepare(st, ST_RECORD,
				  "INSERT OR REPLACE INTO job_run (build_uuid, tenant, pipeline, project, branch, job,"
				  " result, outcome, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
				  "job_run record");
	if (!s)
		return -1;
	bind_text(s, 1, run->build_uuid);
	bind_text(s, 2, run->tenant);
	bind_text(s, 3, run->pipeline);
	bind_text(s, 4, run->project);
	bind_text(s, 5, run->branch);
	bind_text(s, 6, run->job);
	bind_text(s, 7, run->result);
	sqlite3_bind_int(s, 8, (int)run->outcome);
	sqlite3_bind_int64(s, 9, run->at_ms);
	int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : store_internal_fail(st, "job_run record");
	store_internal_done(s);
	return rc;
}

int store_run_set_result(struct store *st, const char *build_uuid, const char *result, enum flaky_outcome outcome)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_prepare(st, ST_SET_RESULT, "UPDATE job_run SET result = ?2, outcome = ?3 WHERE build_uuid = ?1",
				  "job_run true result");
	if (!s)
		return -1;
	bind_text(s, 1, build_uuid);
	bind_text(s, 2, result);
	sqlite3_bind_int(s, 3, (int)outcome);
	int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : store_internal_fail(st, "job_run true result");
	store_internal_done(s);
	return rc;
}

int store_run_history(struct store *st, const char *project, const char *branch, const char *job, int64_t upto_ms,
		      size_t max, enum flaky_outcome *outcomes, size_t *n)
{
	*n = 0;
	sqlite3_stmt *s = store_internal_prepare(st, ST_HISTORY,
				  "SELECT outcome FROM job_run WHERE project = ?1 AND branch = ?2 AND job = ?3"
				  " AND outcome IN (1, 2) AND at_ms <= ?5 ORDER BY at_ms DESC, build_uuid DESC LIMIT ?4",
				  "job_run history");
	if (!s)
		return -1;
	bind_text(s, 1, project);
	bind_text(s, 2, branch);
	bind_text(s, 3, job);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)max);
	sqlite3_bind_int64(s, 5, upto_ms);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
		outcomes[(*n)++] = (enum flaky_outcome)sqlite3_column_int(s, 0);
	int result = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_internal_fail(st, "job_run history");
	store_internal_done(s);
	return result;
}

int store_run_prune(struct store *st, int64_t cutoff_ms)
{
	if (store_internal_begin(st) < 0)
		return -1;
	sqlite3_stmt *s = store_internal_prepare(st, ST_PRUNE, "DELETE FROM job_run WHERE at_ms < ?", "job_run prune");
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, cutoff_ms);
	int rc = sqlite3_step(s) == SQLITE_DONE ? sqlite3_changes(store_internal_db(st))
						 : store_internal_fail(st, "job_run prune");
	store_internal_done(s);
	return rc;
}

int store_run_jobs(struct store *st, const char *project, struct store_job_runs **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	/* The window of each job by a window function: one pass, whatever the retention holds. */
	sqlite3_stmt *s = store_internal_prepare(st, ST_JOBS,
				  "SELECT project, branch, job, outcome, tenant, pipeline FROM ("
				  " SELECT *, row_number() OVER (PARTITION BY project, branch, job"
				  "  ORDER BY at_ms DESC, build_uuid DESC) AS rn"
				  " FROM job_run WHERE outcome IN (1, 2) AND (?1 IS NULL OR project = ?1))"
				  " WHERE rn <= ?2 ORDER BY project, branch, job, rn",
				  "job_run jobs");
	if (!s)
		return -1;
	if (project)
		bind_text(s, 1, project);
	else
		sqlite3_bind_null(s, 1);
	sqlite3_bind_int(s, 2, FLAKY_WINDOW);
	size_t cap = 0;
	struct store_job_runs *jobs = NULL;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(s, 0), *b = (const char *)sqlite3_column_text(s, 1),
			   *j = (const char *)sqlite3_column_text(s, 2);
		struct store_job_runs *last = *n ? &jobs[*n - 1] : NULL;
		if (!last || strcmp(last->project, p ? p : "") != 0 || strcmp(last->branch, b ? b : "") != 0 ||
		    strcmp(last->job, j ? j : "") != 0) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 16;
				jobs = xrealloc(jobs, cap * sizeof *jobs);
			}
			last = &jobs[(*n)++];
			/* The first row of a job is its newest: its tenant and pipeline stand for it. */
			*last = (struct store_job_runs){.project = column_dup(s, 0), .branch = column_dup(s, 1),
							.job = column_dup(s, 2), .tenant = column_dup(s, 4),
							.pipeline = column_dup(s, 5)};
		}
		if (last->n < FLAKY_WINDOW)
			last->outcomes[last->n++] = (enum flaky_outcome)sqlite3_column_int(s, 3);
	}
	int result = rc == SQLITE_DONE ? 0 : store_internal_fail(st, "job_run jobs");
	store_internal_done(s);
	if (result < 0) {
		store_job_runs_free(jobs, *n);
		*n = 0;
		return -1;
	}
	*out = jobs;
	return 0;
}

void store_job_runs_free(struct store_job_runs *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(jobs[i].tenant);
		free(jobs[i].pipeline);
		free(jobs[i].project);
		free(jobs[i].branch);
		free(jobs[i].job);
	}
	free(jobs);
}
