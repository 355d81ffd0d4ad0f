/* store_flaky: the job_run table of the state store (schema version 5): the builds the
 * bridge saw end, per project, branch and job, for flakiness verdicts (flaky.h) and
 * `!zuul flaky`. Writes join the turn's transaction like every other store write. */
#ifndef ZMB_STORE_FLAKY_H
#define ZMB_STORE_FLAKY_H

#include <stddef.h>
#include <stdint.h>

#include "flaky.h"
#include "store.h"

struct store_run {
	const char *build_uuid;
	const char *tenant;   /* NULL is stored as "" (so are the others but the uuid) */
	const char *pipeline;
	const char *project;
	const char *branch;
	const char *job;
	const char *result;
	enum flaky_outcome outcome;
	int64_t at_ms;        /* when the build ended */
};

/* Records one run (a build seen again replaces its row: its true result may come later).
 * 0, or -1 (logged). */
int store_run_record(struct store *st, const struct store_run *run);

/* A run's true result, learnt later (Zuul's API: a job's failure-message had replaced it).
 * 0 (also when the run is not known), or -1 (logged). */
int store_run_set_result(struct store *st, const char *build_uuid, const char *result, enum flaky_outcome outcome);

/* The newest counted runs (FLAKY_PASS or FLAKY_FAIL) of a job that ended at or before
 * upto_ms, newest first, at most max, into outcomes[]. *n is how many. 0, or -1 (logged). */
int store_run_history(struct store *st, const char *project, const char *branch, const char *job, int64_t upto_ms,
		      size_t max, enum flaky_outcome *outcomes, size_t *n);

/* Forgets runs that ended before cutoff_ms. The number forgotten, or -1 (logged). */
int store_run_prune(struct store *st, int64_t cutoff_ms);

/* A job's last counted runs, for ranking. Owned strings. */
struct store_job_runs {
	char *tenant;   /* of its newest run */
	char *pipeline; /* of its newest run */
	char *project;
	char *branch;
	char *job;
	enum flaky_outcome outcomes[FLAKY_WINDOW]; /* newest first */
	size_t n;
};

/* Every job with counted runs (of project only, unless NULL), with its last FLAKY_WINDOW
 * ones, ordered by project, branch, job. *out is NULL when there are none. Free with
 * store_job_runs_free. 0, or -1 (logged). */
int store_run_jobs(struct store *st, const char *project, struct store_job_runs **out, size_t *n);
void store_job_runs_free(struct store_job_runs *jobs, size_t n);

#endif
