/* flaky: a failure judged against the job's recent runs, as the bridge saw them. A job
 * that fails, passes and fails again is flaky; one that starts failing after a row of
 * successes is news; one that keeps failing is broken. */
#include "flaky.h"

#include <string.h>

enum flaky_outcome flaky_outcome_of(const char *result, char *const *infra, size_t n_infra)
{
	if (!result || !*result)
		return FLAKY_NEUTRAL;
	if (strcmp(result, "SUCCESS") == 0)
		return FLAKY_PASS;
	static const char *const neutral[] = {"SKIPPED", "ABORTED", "CANCELED", "RETRY", "DEQUEUED"};
	for (size_t i = 0; i < sizeof neutral / sizeof neutral[0]; i++)
		if (strcmp(result, neutral[i]) == 0)
			return FLAKY_NEUTRAL;
	for (size_t i = 0; infra && i < n_infra; i++)
		if (infra[i] && strcmp(result, infra[i]) == 0)
			return FLAKY_INFRA;
	return FLAKY_FAIL;
}

void flaky_judge(const enum flaky_outcome *history, size_t n, struct flaky_verdict *out)
{
	int retries = out->retries;
	memset(out, 0, sizeof *out);
	out->retries = retries;
	if (n > FLAKY_HISTORY_MAX)
		n = FLAKY_HISTORY_MAX;
	if (n == 0 || history[0] != FLAKY_FAIL)
		return;
	size_t window = n < FLAKY_WINDOW ? n : FLAKY_WINDOW;
	int failures = 0;
	/* Walking back in time: a success seen before (newer than) an older failure means the
	 * job recovered from that failure by itself. */
	bool success_newer = false, recovered = false;
	for (size_t i = 0; i < window; i++) {
		if (history[i] == FLAKY_FAIL) {
			failures++;
			if (i > 0 && success_newer)
				recovered = true;
		} else if (history[i] == FLAKY_PASS && i > 0) {
			success_newer = true;
		}
	}
	if (failures >= FLAKY_MIN_FAILURES && recovered) {
		out->kind = FLAKY_FLAKY;
		out->failures = failures;
		out->runs = (int)window;
		return;
	}
	if (n < 2)
		return;
	if (history[1] == FLAKY_PASS) {
		size_t k = 1;
		while (k < n && history[k] == FLAKY_PASS)
			k++;
		out->kind = FLAKY_NEW;
		out->successes = (int)(k - 1);
		return;
	}
	size_t k = 0;
	while (k < n && history[k] == FLAKY_FAIL)
		k++;
	out->kind = FLAKY_BROKEN;
	out->runs = (int)k;
}

void flaky_describe(const struct flaky_verdict *v, struct strbuf *out)
{
	switch (v->kind) {
	case FLAKY_UNKNOWN:
		return;
	case FLAKY_PASSED_ON_RETRY:
		strbuf_printf(out, "passed on retry in this buildset (%d retried build%s)", v->retries,
			      v->retries == 1 ? "" : "s");
		return;
	case FLAKY_FLAKY:
		strbuf_printf(out, "failed %d of the last %d runs: flaky", v->failures, v->runs);
		break;
	case FLAKY_NEW:
		strbuf_printf(out, "first failure after %d success%s: new", v->successes, v->successes == 1 ? "" : "es");
		break;
	case FLAKY_BROKEN:
		strbuf_printf(out, "failed the last %d runs in a row", v->runs);
		break;
	case FLAKY_INFRA_RESULT:
		strbuf_puts(out, "an infrastructure result: not counted against the job");
		break;
	}
	if (v->retries > 0)
		strbuf_printf(out, " (after %d retried build%s in this buildset)", v->retries, v->retries == 1 ? "" : "s");
}

void flaky_score(const enum flaky_outcome *history, size_t n, struct flaky_score *out)
{
	memset(out, 0, sizeof *out);
	if (n > FLAKY_WINDOW)
		n = FLAKY_WINDOW;
	for (size_t i = 0; i < n; i++) {
		out->runs++;
		if (history[i] == FLAKY_FAIL)
			out->failures++;
		/* newest first: a success at i right after (newer than) a failure at i + 1 */
		if (i + 1 < n && history[i] == FLAKY_PASS && history[i + 1] == FLAKY_FAIL)
			out->recoveries++;
	}
	out->flaky = out->failures >= FLAKY_MIN_FAILURES && out->recoveries >= 1;
}

int flaky_score_cmp(const struct flaky_score *a, const struct flaky_score *b)
{
	if (a->recoveries != b->recoveries)
		return b->recoveries - a->recoveries;
	/* failures / runs, compared without division */
	long long fa = (long long)a->failures * b->runs, fb = (long long)b->failures * a->runs;
	if (fa != fb)
		return fa > fb ? -1 : 1;
	return b->runs - a->runs;
}

const char *flaky_kind_name(enum flaky_kind kind)
{
	switch (kind) {
	case FLAKY_PASSED_ON_RETRY:
		return "passed-on-retry";
	case FLAKY_FLAKY:
		return "flaky";
	case FLAKY_NEW:
		return "new";
	case FLAKY_BROKEN:
		return "broken";
	case FLAKY_INFRA_RESULT:
		return "infra";
	case FLAKY_UNKNOWN:
		break;
	}
	return "unknown";
}
