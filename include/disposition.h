/* disposition: what happens to one report in one route's room, decided in one place.
 *
 * The daemon gathers the facts (does the route match, is there an open failure of the
 * same jobs, a mute, an incident, a start report, a catch-up) from the room state it
 * keeps, then asks disposition_decide(), which reads nothing else: the same facts give
 * the same answer, whether the daemon acts on it or `explain` prints it. Acting on it
 * (posting, counting a mute, closing streaks) is the caller's job. */
#ifndef ZMB_DISPOSITION_H
#define ZMB_DISPOSITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"
#include "zuul.h"

enum disposition_kind {
	DISPOSITION_NOT_ROUTED,   /* the route's rules do not take it */
	DISPOSITION_NEW_MESSAGE,  /* a message of its own (a failure opens a thread) */
	DISPOSITION_THREAD_REPLY, /* a repeat: a reply in the open failure's thread, its root edited */
	DISPOSITION_EDIT,         /* the result replaces its start report, edited in place */
	DISPOSITION_RECOVERY,     /* a success closing failure streaks: told in their threads */
	DISPOSITION_INCIDENT,     /* absorbed into an infrastructure incident's message */
	DISPOSITION_MUTED,        /* a muted failure: counted, not posted */
	DISPOSITION_CATCHUP,      /* happened while the bridge was away: the catch-up summary tells it */
};

/* A failure message the decision refers to. */
struct disposition_failure {
	const char *txn;      /* its transaction id */
	const char *event_id; /* NULL until the homeserver took it */
	int64_t count;        /* failures in its thread, the first included */
	int64_t opened_ms;
};

/* Everything the decision depends on. Strings are borrowed. */
struct disposition_facts {
	bool matches;              /* the route's rules take the report */
	bool failure;              /* a failure the room side follows (claims, repeats, escalation) */
	bool threads;              /* chatops.threads: repeats and recoveries go into threads */
	bool away;                 /* a catch-up is in progress (the bridge was away) */
	/* A success: the route's open failures of the same project, branch and pipeline. */
	size_t streaks_open;
	size_t streaks_unposted;   /* of them, opened while away and never posted */
	struct disposition_failure streak; /* the oldest of them */
	/* A failure. */
	int64_t muted_until_ms;    /* a mute in the route's room covers it; 0: none */
	bool absorbed;             /* the incident tracker took it into an incident */
	const char *incident;      /* that incident, described ("NODE_FAILURE in tenant t, 6 projects") */
	bool has_repeat;           /* an open failure of the same jobs in this route */
	struct disposition_failure repeat;
	/* The route edits start reports into results, and this report's start was queued. */
	const char *start_txn;
};

struct disposition {
	enum disposition_kind kind;
	/* The success marks the route's open streaks recovered (whatever kind says of the
	 * report itself: with threads off it is also posted as the route says). */
	bool closes_streaks;
	/* A repeat of an open failure whose start report was posted: that start report
	 * becomes a pointer to the thread. */
	bool start_becomes_pointer;
	struct strbuf why;         /* one sentence, for the log and `explain` */
};

/* Fills *out (free with disposition_clear). Pure: reads nothing but its arguments. */
void disposition_decide(const struct zuul_event *ev, const struct disposition_facts *facts, struct disposition *out);
void disposition_clear(struct disposition *d);
/* "thread reply", "muted", ...: for logs and metrics labels. */
const char *disposition_kind_name(enum disposition_kind kind);
/* The log line's message for a decision ("report muted"). */
const char *disposition_log_message(enum disposition_kind kind);
/* Whether the report counts as routed (it reached the room in some form). */
bool disposition_routed(enum disposition_kind kind);

#endif
