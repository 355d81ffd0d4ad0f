/* report_facts: everything one route's decision about a report depends on: the route's
 * verdict, the room state (chatops_gather_facts) and the start report a result would
 * edit. The daemon and `explain` gather them the same way, so `explain` tells what the
 * daemon would do. */
#ifndef ZMB_REPORT_FACTS_H
#define ZMB_REPORT_FACTS_H

#include "chatops.h"
#include "config.h"
#include "disposition.h"
#include "incident.h"
#include "route.h"
#include "store.h"
#include "zuul.h"

struct report_facts {
	struct disposition_facts facts; /* borrows from the rest */
	struct chatops_facts room;
	char *start_txn;
};

/* Fills *out for route r (of cfg) and ev with event key `key`; c may be NULL (no room
 * side), incidents is what triage said of ev. Read-only. Clear with report_facts_clear. */
void report_facts_gather(struct chatops *c, struct store *st, const struct config *cfg, const struct route *r,
			 const struct zuul_event *ev, const char *key, const struct incident_outcome *incidents,
			 struct report_facts *out);
void report_facts_clear(struct report_facts *f);

#endif
