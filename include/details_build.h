/* details_build: what the bridge knows of one build beyond its report (issue #16): the
 * flakiness verdict judged when the report came in and, once fetched, the true result,
 * the error detail and the failing task. Plain data, shared by the details module that
 * fills it and the report's view model that shows it. */
#ifndef ZMB_DETAILS_BUILD_H
#define ZMB_DETAILS_BUILD_H

#include <stdbool.h>

#include "flaky.h"
#include "job_output.h"

/* Strings are owned by whoever made the struct, clean UTF-8 raw text: escape them like any
 * other value (see docs/operations.md "Build details"). */
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

/* The true result when it says something the report did not: a job's failure-message
 * hid it. NULL otherwise. */
const char *details_build_true_result(const struct build_details *b);

/* Whether the fetches found anything to show (a task, an error detail, a hidden true
 * result): what makes a report worth editing once they are done. */
bool details_build_fetched_news(const struct build_details *b);

#endif
