/* details: why a build failed and whether that is new (issue #16). It records every build
 * result the bridge receives for flakiness verdicts, and, with the `details` group, fetches
 * a failed build's record from Zuul's API and its job output from the listed hosts, then
 * answers the failure message in its thread. The report itself is never held back: the
 * bridge posts it, then tells this module, whose answer follows once the fetches are done. */
#ifndef ZMB_DETAILS_H
#define ZMB_DETAILS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "flaky.h"
#include "job_output.h"
#include "loop.h"
#include "store.h"
#include "zuul.h"

/* Failed builds of one report that get details (the others are named, not fetched). */
#define DETAILS_MAX_BUILDS 8
/* Builds remembered (cache: a build is fetched once); the oldest finished ones go first. */
#define DETAILS_CACHE_MAX 512

/* What is known of one build: the view model's part for the report (see docs/operations.md
 * "Build details"). Strings are owned, clean UTF-8 raw text (escape them like any value). */
struct build_details {
	char *uuid;
	char *job;
	char *reported_result;  /* the report's result: a job's failure-message when it has one */
	char *true_result;      /* the API's result, NULL until known (or not fetched) */
	char *error_detail;     /* the API's error_detail, NULL when none */
	bool has_task;
	struct job_output_failure task; /* the failing task, when has_task */
	struct flaky_verdict verdict;   /* judged when the report came in */
	bool failed;            /* the build failed (its verdict is about a failure) */
	/* Where the fetching stands. */
	bool fetch_started;
	bool done;              /* every fetch finished (or none was started) */
	char *fetch_errors;     /* "; "-separated reasons, for the one log line; NULL: none */
};

struct details;

/* Posts content into room exactly once per (kind, key): the bridge's chatops post path
 * (queue_content under the pseudo-route "chatops"). 0, or -1 when it could not be queued. */
typedef int (*details_post_fn)(const char *room, const char *kind, const char *key, const cJSON *content,
			       void *data);

/* cfg (details, triage.infra_results) is replaced by details_reload and must outlive it.
 * Never NULL: without a details group it only records results and judges failures. */
struct details *details_new(struct loop *loop, struct store *store, const struct config *cfg, details_post_fn post,
			    void *post_data);
void details_reload(struct details *d, const struct config *cfg);
void details_free(struct details *d);

/* Once per decoded report, before the routes: records its ended builds (job_run) and judges
 * its failed ones and those that passed on retry. */
void details_observe(struct details *d, const struct zuul_event *ev);

/* A route posted ev's report into room: its message (or the thread it went into) is the
 * thread root queued as root_txn. With the details group, fetching starts for the failed
 * builds whose web_url or log_url host is listed, and once all are done (or at once, when
 * nothing is fetched) the answer is posted in the thread: kind "details", key
 * "KEY|ROUTE", so it is one transaction however often this is called. Nothing is posted when
 * there is nothing to say. */
void details_report_posted(struct details *d, const struct zuul_event *ev, const char *key, const char *route,
			   const char *room, const char *root_txn);

/* The details of a build known so far, or NULL. Valid until the next call into details. */
const struct build_details *details_of(const struct details *d, const char *build_uuid);

/* Counters for operations and tests. */
struct details_stats {
	uint64_t fetches_ok;
	uint64_t fetches_failed;
	uint64_t refused;         /* URLs not fetched: host not listed, or not a URL to fetch */
	uint64_t answers_posted;
};
const struct details_stats *details_stats(const struct details *d);

#endif
