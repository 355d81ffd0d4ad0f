/* details: why a build failed and whether that is new (issue #16). It records every build
 * result the bridge receives for flakiness verdicts, and, with the `details` group, fetches
 * a failed build's record from Zuul's API and its job output from the listed hosts, then
 * has the bridge edit the posted report to show them. The report itself is never held
 * back: the bridge posts it (with the verdicts, known at once), then tells this module,
 * whose edit follows once the fetches are done. */
#ifndef ZMB_DETAILS_H
#define ZMB_DETAILS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "details_build.h"
#include "loop.h"
#include "stats.h"
#include "store.h"
#include "zuul.h"

/* Failed builds of one report that get details (the others are named, not fetched). */
#define DETAILS_MAX_BUILDS 8
/* Builds remembered (cache: a build is fetched once); the oldest finished ones go first. */
#define DETAILS_CACHE_MAX 512
/* Reports waiting for their fetches keep a copy of their payload to be rendered again; past
 * this many bytes of them, a further report is posted without fetching its details (a burst
 * of huge failure reports must not grow the daemon by hundreds of MiB). */
#define DETAILS_PENDING_MAX_BYTES (16u * 1024 * 1024)

struct details;

/* A message a route posted for a report, with what the bridge needs to render the report
 * again and edit that message once its builds' details are in. */
struct details_posted {
	const char *room;
	const char *route;
	const char *key;     /* the report's event key */
	const char *txn;     /* the message to edit: the report's own (a repeat's in its thread
			      * too), or the start report it edited in place */
	bool repeat;         /* a repeat in an open failure's thread: its own message, no claims */
	const char *payload; /* the report as it came, to decode again (payload_len bytes) */
	size_t payload_len;
};

/* Renders p's report again, now that details_of knows its builds' details, and queues the
 * edit of p->txn exactly once per (key, route). 0, or -1 when nothing could be queued. */
typedef int (*details_edit_fn)(const struct details_posted *p, void *data);

/* cfg (details, triage.infra_results) is replaced by details_reload and must outlive it.
 * stats: where fetches, refusals and edits are counted (NULL: not counted). Never NULL:
 * without a details group it only records results and judges failures. */
struct details *details_new(struct loop *loop, struct store *store, const struct config *cfg,
			    struct stats_details *stats, details_edit_fn edit, void *edit_data);
void details_reload(struct details *d, const struct config *cfg);
void details_free(struct details *d);

/* Once per decoded report, before the routes: records its ended builds (job_run) and judges
 * its failed ones and those that passed on retry, so the report shows the verdicts at once. */
void details_observe(struct details *d, const struct zuul_event *ev);

/* A route queued ev's report as p (copied). With the details group, fetching starts for
 * the failed builds (the first DETAILS_MAX_BUILDS) whose web_url or log_url host is listed
 * (unless DETAILS_PENDING_MAX_BYTES of reports wait already: then one warning, nothing more),
 * and once all are done the edit function is called, if the fetches found anything (a
 * task, an error detail, a hidden true result): verdicts alone were in the report already. */
void details_report_posted(struct details *d, const struct zuul_event *ev, const struct details_posted *p);

/* The details of a build known so far, or NULL. Valid until the next call into details. */
const struct build_details *details_of(const struct details *d, const char *build_uuid);

#endif
