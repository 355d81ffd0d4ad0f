/* Tests of flakiness verdicts: flaky_judge on run patterns (pure), build results to
 * outcomes, and the job_run table (store_flaky) in a real SQLite file: recording twice,
 * history order, the per-job window, retention and the migration of a version 4 database. */
#include "flaky.h"
#include "store_flaky.h"

#include <ftw.h>
#include <stdint.h>
#include <sqlite3.h>
#include <unistd.h>

#include "store.h"
#include "strbuf.h"
#include "test.h"

#define P FLAKY_PASS
#define F FLAKY_FAIL

static char base_dir[64];
static char state_dir[128];
static char err[512];

/* The sentence for a history given newest first, as "kind: sentence". */
static char *judge(const enum flaky_outcome *h, size_t n, int retries)
{
	struct flaky_verdict v = {.retries = retries};
	flaky_judge(h, n, &v);
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "%s: ", flaky_kind_name(v.kind));
	flaky_describe(&v, &sb);
	return strbuf_detach(&sb);
}

#define CHECK_JUDGE(retries, want, ...)                                                              \
	do {                                                                                         \
		const enum flaky_outcome h_[] = {__VA_ARGS__};                                       \
		char *got_ = judge(h_, sizeof h_ / sizeof h_[0], retries);                           \
		CHECK_STR(got_, want);                                                               \
		free(got_);                                                                          \
	} while (0)

static void test_verdicts(void)
{
	/* newest first: the judged run is the first */
	CHECK_JUDGE(0, "unknown: ", F);
	CHECK_JUDGE(0, "unknown: ", P, F, F);
	CHECK_JUDGE(0, "new: first failure after 1 success: new", F, P);
	CHECK_JUDGE(0, "new: first failure after 7 successes: new", F, P, P, P, P, P, P, P);
	CHECK_JUDGE(0, "broken: failed the last 2 runs in a row", F, F);
	CHECK_JUDGE(0, "broken: failed the last 4 runs in a row", F, F, F, F, P, P);
	/* failed, recovered by itself, failed again */
	CHECK_JUDGE(0, "flaky: failed 2 of the last 3 runs: flaky", F, P, F);
	CHECK_JUDGE(0, "flaky: failed 4 of the last 10 runs: flaky", F, P, F, P, P, F, P, P, F, P, F, F);
	CHECK_JUDGE(0, "flaky: failed 3 of the last 4 runs: flaky", F, F, P, F);
	/* an old failure out of the window: the job is new again */
	CHECK_JUDGE(0, "new: first failure after 10 successes: new", F, P, P, P, P, P, P, P, P, P, P, F);
	/* broken from the start of what the bridge saw, then fixed and broken anew */
	CHECK_JUDGE(0, "flaky: failed 3 of the last 5 runs: flaky", F, F, P, P, F);
	CHECK_JUDGE(2, "flaky: failed 2 of the last 3 runs: flaky (after 2 retried builds in this buildset)", F, P, F);
	CHECK_JUDGE(1, "new: first failure after 1 success: new (after 1 retried build in this buildset)", F, P);
	char *none = judge(NULL, 0, 0);
	CHECK_STR(none, "unknown: ");
	free(none);
}

static void test_describe_other_kinds(void)
{
	struct strbuf sb = STRBUF_INIT;
	struct flaky_verdict v = {.kind = FLAKY_PASSED_ON_RETRY, .retries = 1};
	flaky_describe(&v, &sb);
	CHECK_STR(strbuf_str(&sb), "passed on retry in this buildset (1 retried build)");
	strbuf_reset(&sb);
	v = (struct flaky_verdict){.kind = FLAKY_INFRA_RESULT};
	flaky_describe(&v, &sb);
	CHECK_STR(strbuf_str(&sb), "an infrastructure result: not counted against the job");
	CHECK_STR(flaky_kind_name(FLAKY_PASSED_ON_RETRY), "passed-on-retry");
	CHECK_STR(flaky_kind_name(FLAKY_INFRA_RESULT), "infra");
	strbuf_free(&sb);
}

static void test_scores_rank_the_flakiest_first(void)
{
	const enum flaky_outcome steady[] = {F, F, F, F};
	const enum flaky_outcome twice[] = {P, F, P, F, P, P};
	const enum flaky_outcome once[] = {F, P, F, P, P, P};
	const enum flaky_outcome half[] = {P, F};
	struct flaky_score s1, s2, s3, s4;
	flaky_score(steady, 4, &s1);
	flaky_score(twice, 6, &s2);
	flaky_score(once, 6, &s3);
	flaky_score(half, 2, &s4);
	CHECK(!s1.flaky); /* broken, not flaky */
	CHECK_INT(s1.recoveries, 0);
	CHECK(s2.flaky);
	CHECK_INT(s2.recoveries, 2);
	CHECK_INT(s2.failures, 2);
	CHECK(s3.flaky);
	CHECK_INT(s3.recoveries, 1);
	CHECK(!s4.flaky); /* one failure is not a pattern */
	CHECK(flaky_score_cmp(&s2, &s3) < 0);
	CHECK(flaky_score_cmp(&s3, &s2) > 0);
	CHECK(flaky_score_cmp(&s2, &s2) == 0);
}

static void test_outcomes(void)
{
	char *infra[] = {"NODE_FAILURE", "RETRY_LIMIT"};
	CHECK_INT(flaky_outcome_of("SUCCESS", infra, 2), FLAKY_PASS);
	CHECK_INT(flaky_outcome_of("FAILURE", infra, 2), FLAKY_FAIL);
	CHECK_INT(flaky_outcome_of("TIMED_OUT", infra, 2), FLAKY_FAIL);
	CHECK_INT(flaky_outcome_of("Build failed, see the docs", infra, 2), FLAKY_FAIL); /* a failure-message */
	CHECK_INT(flaky_outcome_of("NODE_FAILURE", infra, 2), FLAKY_INFRA);
	CHECK_INT(flaky_outcome_of("RETRY_LIMIT", infra, 2), FLAKY_INFRA);
	CHECK_INT(flaky_outcome_of("NODE_FAILURE", NULL, 0), FLAKY_FAIL);
	CHECK_INT(flaky_outcome_of("SKIPPED", infra, 2), FLAKY_NEUTRAL);
	CHECK_INT(flaky_outcome_of("ABORTED", infra, 2), FLAKY_NEUTRAL);
	CHECK_INT(flaky_outcome_of("CANCELED", infra, 2), FLAKY_NEUTRAL);
	CHECK_INT(flaky_outcome_of("RETRY", infra, 2), FLAKY_NEUTRAL);
	CHECK_INT(flaky_outcome_of(NULL, infra, 2), FLAKY_NEUTRAL);
	CHECK_INT(flaky_outcome_of("", infra, 2), FLAKY_NEUTRAL);
}

/* ---- the job_run table ---- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static struct store *fresh_store(void)
{
	snprintf(base_dir, sizeof base_dir, "/tmp/zmb-flaky-XXXXXX");
	if (!mkdtemp(base_dir))
		abort();
	snprintf(state_dir, sizeof state_dir, "%s/state", base_dir);
	struct store *st = store_open(state_dir, err, sizeof err);
	if (!st)
		printf("# store_open: %s\n", err);
	return st;
}

static void remove_dirs(void) { nftw(base_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS); }

static int record(struct store *st, const char *uuid, const char *job, const char *result, enum flaky_outcome o,
		  int64_t at)
{
	struct store_run r = {.build_uuid = uuid, .tenant = "scs", .pipeline = "periodic-daily",
			      .project = "SovereignCloudStack/standards", .branch = "main", .job = job,
			      .result = result, .outcome = o, .at_ms = at};
	return store_run_record(st, &r);
}

static char *history(struct store *st, const char *job)
{
	enum flaky_outcome h[FLAKY_HISTORY_MAX];
	size_t n = 0;
	CHECK_INT(store_run_history(st, "SovereignCloudStack/standards", "main", job, INT64_MAX, FLAKY_HISTORY_MAX, h, &n), 0);
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < n; i++)
		strbuf_putc(&sb, h[i] == FLAKY_PASS ? 'P' : h[i] == FLAKY_FAIL ? 'F' : '?');
	return strbuf_detach(&sb);
}

static void test_store_records_and_reads_back(void)
{
	struct store *st = fresh_store();
	CHECK(st != NULL);
	if (!st)
		return;
	CHECK_INT(record(st, "b1", "tox", "SUCCESS", FLAKY_PASS, 1000), 0);
	CHECK_INT(record(st, "b2", "tox", "FAILURE", FLAKY_FAIL, 2000), 0);
	CHECK_INT(record(st, "b3", "tox", "NODE_FAILURE", FLAKY_INFRA, 3000), 0);
	CHECK_INT(record(st, "b4", "tox", "SUCCESS", FLAKY_PASS, 4000), 0);
	CHECK_INT(record(st, "b5", "lint", "FAILURE", FLAKY_FAIL, 1500), 0);
	/* The same build again (a report delivered twice) counts once; a later true result wins. */
	CHECK_INT(record(st, "b2", "tox", "FAILURE", FLAKY_FAIL, 2000), 0);
	CHECK_INT(record(st, "b6", "tox", "FAILURE", FLAKY_FAIL, 5000), 0);
	char *h = history(st, "tox");
	CHECK_STR(h, "FPFP"); /* newest first, the infrastructure result left out */
	free(h);
	CHECK_INT(record(st, "b6", "tox", "SUCCESS", FLAKY_PASS, 5000), 0);
	h = history(st, "tox");
	CHECK_STR(h, "PPFP");
	free(h);
	/* The API says what a failure-message hid. */
	CHECK_INT(store_run_set_result(st, "b6", "FAILURE", FLAKY_FAIL), 0);
	CHECK_INT(store_run_set_result(st, "unknown", "FAILURE", FLAKY_FAIL), 0);
	h = history(st, "tox");
	CHECK_STR(h, "FPFP");
	free(h);
	CHECK_INT(store_commit(st), 0);

	struct store_job_runs *jobs;
	size_t n;
	CHECK_INT(store_run_jobs(st, NULL, &jobs, &n), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(jobs[0].job, "lint");
		CHECK_INT(jobs[0].n, 1);
		CHECK_STR(jobs[1].job, "tox");
		CHECK_INT(jobs[1].n, 4);
		CHECK_INT(jobs[1].outcomes[0], FLAKY_FAIL); /* b6, as the API said */
		CHECK_INT(jobs[1].outcomes[2], FLAKY_FAIL);
		CHECK_STR(jobs[1].pipeline, "periodic-daily");
		CHECK_STR(jobs[1].tenant, "scs");
	}
	store_job_runs_free(jobs, n);
	CHECK_INT(store_run_jobs(st, "other/project", &jobs, &n), 0);
	CHECK_INT(n, 0);
	CHECK(jobs == NULL);

	/* Retention: runs that ended before the cutoff go. */
	CHECK_INT(store_run_prune(st, 2500), 3);
	h = history(st, "tox");
	CHECK_STR(h, "FP");
	free(h);
	store_close(st);
	remove_dirs();
}

static void test_store_window_per_job(void)
{
	struct store *st = fresh_store();
	CHECK(st != NULL);
	if (!st)
		return;
	char uuid[32];
	for (int i = 0; i < 25; i++) {
		snprintf(uuid, sizeof uuid, "u%02d", i);
		record(st, uuid, "tox", i % 3 ? "SUCCESS" : "FAILURE", i % 3 ? FLAKY_PASS : FLAKY_FAIL, 1000 + i);
	}
	struct store_job_runs *jobs;
	size_t n;
	CHECK_INT(store_run_jobs(st, "SovereignCloudStack/standards", &jobs, &n), 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_INT(jobs[0].n, FLAKY_WINDOW);
		CHECK_INT(jobs[0].outcomes[0], FLAKY_FAIL); /* i = 24 */
		CHECK_INT(jobs[0].outcomes[1], FLAKY_PASS); /* i = 23 */
	}
	store_job_runs_free(jobs, n);
	enum flaky_outcome h[5];
	size_t hn = 0;
	CHECK_INT(store_run_history(st, "SovereignCloudStack/standards", "main", "tox", INT64_MAX, 5, h, &hn), 0);
	CHECK_INT(hn, 5);
	/* Up to a run: what came before it, and it (a report read late judges as of its build). */
	CHECK_INT(store_run_history(st, "SovereignCloudStack/standards", "main", "tox", 1003, 5, h, &hn), 0);
	CHECK_INT(hn, 4);
	CHECK_INT(h[0], FLAKY_FAIL); /* i = 3 */
	CHECK_INT(h[1], FLAKY_PASS); /* i = 2 */
	store_close(st);
	remove_dirs();
}

/* A state_dir of the version before build details opens, gains the table and keeps its rows. */
static void test_version_4_database_migrates(void)
{
	struct store *st = fresh_store();
	CHECK(st != NULL);
	if (!st)
		return;
	CHECK_INT(store_kv_set(st, "kept", "yes"), 0);
	store_close(st);
	char path[256];
	snprintf(path, sizeof path, "%s/state.db", state_dir);
	sqlite3 *db = NULL;
	CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, "DROP TABLE job_run; PRAGMA user_version = 4", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	st = store_open(state_dir, err, sizeof err);
	CHECK(st != NULL);
	if (!st)
		return;
	char *kept = store_kv_get(st, "kept");
	CHECK_STR(kept, "yes");
	free(kept);
	CHECK_INT(record(st, "b1", "tox", "FAILURE", FLAKY_FAIL, 1), 0);
	char *h = history(st, "tox");
	CHECK_STR(h, "F");
	free(h);
	store_close(st);
	remove_dirs();
}

int main(void)
{
	RUN(test_verdicts);
	RUN(test_describe_other_kinds);
	RUN(test_scores_rank_the_flakiest_first);
	RUN(test_outcomes);
	RUN(test_store_records_and_reads_back);
	RUN(test_store_window_per_job);
	RUN(test_version_4_database_migrates);
	return test_done();
}
