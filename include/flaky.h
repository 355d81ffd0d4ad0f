/* flaky: whether a job's failure is new, flaky or a steady breakage, judged from the
 * results the bridge itself received for that job (project, branch, job). Pure: the
 * history comes in as a list, the verdict goes out as values and one sentence. */
#ifndef ZMB_FLAKY_H
#define ZMB_FLAKY_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* How many of a job's most recent runs a verdict looks at ("failed N of the last M"). */
#define FLAKY_WINDOW 10
/* A job is flaky when, within the window, it failed at least this many times and passed
 * in between: it recovered by itself at least once and failed again. */
#define FLAKY_MIN_FAILURES 2
/* The most runs read back to count the successes before a new failure. */
#define FLAKY_HISTORY_MAX 100
/* How long runs are kept (the retention of the job_run table). */
#define FLAKY_RETENTION_S (14LL * 86400)

/* What one build's result means for its job. Stored as these numbers. */
enum flaky_outcome {
	FLAKY_NEUTRAL = 0, /* not an outcome of the job: running, SKIPPED, ABORTED, CANCELED, RETRY */
	FLAKY_PASS = 1,    /* SUCCESS */
	FLAKY_FAIL = 2,    /* any other result: the job failed */
	FLAKY_INFRA = 3,   /* a result of triage.infra_results: not counted against the job */
};

/* The outcome of a build result; infra is the list of infrastructure results
 * (config triage.infra_results). */
enum flaky_outcome flaky_outcome_of(const char *result, char *const *infra, size_t n_infra);

enum flaky_kind {
	FLAKY_UNKNOWN = 0,     /* nothing to say: the first run seen, or a success */
	FLAKY_PASSED_ON_RETRY, /* succeeded after `retries` retried builds in this buildset */
	FLAKY_FLAKY,           /* failed `failures` of the last `runs` runs, passing in between */
	FLAKY_NEW,             /* the first failure after `successes` successes */
	FLAKY_BROKEN,          /* failed the last `runs` runs in a row */
	FLAKY_INFRA_RESULT,    /* an infrastructure result: not counted against the job */
};

struct flaky_verdict {
	enum flaky_kind kind;
	int failures;
	int runs;
	int successes;
	int retries; /* retried builds of the job in this buildset */
};

/* Judges the newest run, history[0], from the job's counted runs newest first (only
 * FLAKY_PASS and FLAKY_FAIL; at most FLAKY_HISTORY_MAX are looked at). In order:
 *  - history[0] passed: UNKNOWN (PASSED_ON_RETRY is the caller's, who knows the retries);
 *  - within the last FLAKY_WINDOW runs, at least FLAKY_MIN_FAILURES failures and a success
 *    after an earlier failure: FLAKY, "failed N of the last M runs";
 *  - the run before passed: NEW, "first failure after K successes" (K: the successes in a
 *    row before it, as far as the history goes);
 *  - the run before failed too: BROKEN, "failed the last N runs in a row";
 *  - no run before: UNKNOWN.
 * out->retries is kept as the caller set it (the job's retried builds in this buildset). */
void flaky_judge(const enum flaky_outcome *history, size_t n, struct flaky_verdict *out);

/* Appends the verdict as a sentence ("failed 3 of the last 10 runs: flaky"), with the
 * retries of a failed build after it; nothing for UNKNOWN. */
void flaky_describe(const struct flaky_verdict *v, struct strbuf *out);

/* How flaky a job's last runs (newest first, counted ones only) look, for ranking jobs:
 * its failures among them, and how often it recovered by itself (a failure followed by a
 * success). flaky: FLAKY_MIN_FAILURES or more failures and at least one recovery. */
struct flaky_score {
	int failures;
	int runs;
	int recoveries;
	bool flaky;
};
void flaky_score(const enum flaky_outcome *history, size_t n, struct flaky_score *out);
/* Orders two scores, flakiest first (more recoveries, then a higher failure rate, then more
 * runs): < 0 when a goes first. */
int flaky_score_cmp(const struct flaky_score *a, const struct flaky_score *b);

/* "unknown", "passed-on-retry", "flaky", "new", "broken", "infra": for templates and logs. */
const char *flaky_kind_name(enum flaky_kind kind);

#endif
