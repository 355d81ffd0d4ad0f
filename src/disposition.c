/* disposition: the one place that decides what a report becomes in a route's room (see
 * disposition.h). The order of the questions is the policy:
 *   1. a success that ends failure streaks is told where the failures are (their threads,
 *      or the catch-up summary when they came and went while the bridge was away);
 *   2. a report the route does not take goes nowhere;
 *   3. a muted failure is counted, not posted;
 *   4. a failure an infrastructure incident absorbed lives in the incident's message;
 *   5. a repeat of an open failure goes into its thread;
 *   6. a result whose start report was posted edits it;
 *   7. anything else is a message of its own. */
#include "disposition.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void format_utc(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (ms <= 0 || !gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(buf, len, "an unknown time");
}

/* "$event" or, before the homeserver took it, the transaction it is queued as. */
static void name_failure(struct strbuf *out, const struct disposition_failure *f)
{
	if (f->event_id)
		strbuf_printf(out, "%s", f->event_id);
	else
		strbuf_printf(out, "the failure queued as %s (not delivered yet)", f->txn ? f->txn : "?");
}

static void decide_streaks(const struct disposition_facts *facts, struct disposition *out)
{
	out->closes_streaks = true;
	if (facts->streaks_unposted) {
		out->kind = DISPOSITION_CATCHUP;
		strbuf_printf(&out->why,
			      "left to the catch-up summary: it closes %zu failure%s that came and went while the bridge "
			      "was away",
			      facts->streaks_unposted, facts->streaks_unposted == 1 ? "" : "s");
		return;
	}
	if (!facts->threads)
		return; /* marked recovered; the success itself goes as the route says */
	char since[64];
	format_utc(facts->streak.opened_ms, since, sizeof since);
	out->kind = DISPOSITION_RECOVERY;
	strbuf_printf(&out->why, "told in the thread of ");
	name_failure(&out->why, &facts->streak);
	strbuf_printf(&out->why, ": recovers a failure that failed %lld time%s since %s",
		      (long long)facts->streak.count, facts->streak.count == 1 ? "" : "s", since);
	if (facts->streaks_open > 1)
		strbuf_printf(&out->why, ", and %zu more open failure%s of this project", facts->streaks_open - 1,
			      facts->streaks_open == 2 ? "" : "s");
}

void disposition_decide(const struct zuul_event *ev, const struct disposition_facts *facts, struct disposition *out)
{
	memset(out, 0, sizeof *out);
	out->kind = DISPOSITION_NEW_MESSAGE;
	if (facts->streaks_open && (facts->threads || facts->away)) {
		decide_streaks(facts, out);
		if (out->kind != DISPOSITION_NEW_MESSAGE)
			return;
	}
	if (!facts->matches) {
		out->kind = DISPOSITION_NOT_ROUTED;
		strbuf_printf(&out->why, "not routed: the route's rules do not take it");
		return;
	}
	if (facts->muted_until_ms > 0) {
		char until[64];
		format_utc(facts->muted_until_ms, until, sizeof until);
		out->kind = DISPOSITION_MUTED;
		strbuf_printf(&out->why, "muted in this room until %s: counted, not posted", until);
		return;
	}
	if (facts->absorbed) {
		out->kind = DISPOSITION_INCIDENT;
		strbuf_printf(&out->why, "absorbed into the infrastructure incident %s",
			      facts->incident ? facts->incident : "(unnamed)");
		return;
	}
	if (facts->has_repeat) {
		char since[64];
		format_utc(facts->repeat.opened_ms, since, sizeof since);
		out->kind = DISPOSITION_THREAD_REPLY;
		out->start_becomes_pointer = facts->start_txn != NULL;
		strbuf_printf(&out->why, "into the thread of ");
		name_failure(&out->why, &facts->repeat);
		strbuf_printf(&out->why, ": failed %lld times since %s, this one included", (long long)facts->repeat.count + 1,
			      since);
		return;
	}
	if (facts->start_txn) {
		out->kind = DISPOSITION_EDIT;
		strbuf_printf(&out->why, "edits its start report (%s) into the %s result", facts->start_txn,
			      ev->action ? ev->action : "");
		return;
	}
	if (facts->failure && facts->threads)
		strbuf_printf(&out->why, "a new message: a failure whose repeats will go into its thread");
	else
		strbuf_printf(&out->why, "a new message");
	if (out->closes_streaks)
		strbuf_printf(&out->why, " (the open failures it ends are marked recovered)");
}

void disposition_clear(struct disposition *d)
{
	strbuf_free(&d->why);
}

const char *disposition_kind_name(enum disposition_kind kind)
{
	switch (kind) {
	case DISPOSITION_NOT_ROUTED: return "not routed";
	case DISPOSITION_NEW_MESSAGE: return "new message";
	case DISPOSITION_THREAD_REPLY: return "thread reply";
	case DISPOSITION_EDIT: return "edit";
	case DISPOSITION_RECOVERY: return "recovery";
	case DISPOSITION_INCIDENT: return "incident";
	case DISPOSITION_MUTED: return "muted";
	case DISPOSITION_CATCHUP: return "catch-up";
	}
	return "?";
}

const char *disposition_log_message(enum disposition_kind kind)
{
	switch (kind) {
	case DISPOSITION_NOT_ROUTED: return "report not routed";
	case DISPOSITION_NEW_MESSAGE: return "report becomes a new message";
	case DISPOSITION_THREAD_REPLY: return "report goes into an open failure's thread";
	case DISPOSITION_EDIT: return "report edits its start report";
	case DISPOSITION_RECOVERY: return "success closes a failure streak; told in its thread";
	case DISPOSITION_INCIDENT: return "report absorbed into an infrastructure incident";
	case DISPOSITION_MUTED: return "report muted";
	case DISPOSITION_CATCHUP: return "report left to the catch-up summary";
	}
	return "report decided";
}

bool disposition_routed(enum disposition_kind kind)
{
	return kind != DISPOSITION_NOT_ROUTED;
}
