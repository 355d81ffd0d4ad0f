/* report_facts: see report_facts.h. */
#include "report_facts.h"

#include <stdlib.h>
#include <string.h>

#include "bridge.h"

/* With the route's edit_start: the start report of the same item posted before (its
 * txn), which the result replaces instead of being a second message. */
static char *start_to_edit(struct store *st, const struct config *cfg, const struct route *r,
			   const struct zuul_event *ev, const char *key)
{
	if (!config_route_chatops(cfg, r)->edit_start || !ev->action || strcmp(ev->action, "start") == 0)
		return NULL;
	char *txn = bridge_txn_id(key, "start", r->name);
	if (store_txn_known(st, txn) == 1)
		return txn;
	free(txn);
	return NULL;
}

void report_facts_gather(struct chatops *c, struct store *st, const struct config *cfg, const struct route *r,
			 const struct zuul_event *ev, const char *key, const struct incident_outcome *incidents,
			 struct report_facts *out)
{
	memset(out, 0, sizeof *out);
	out->facts.matches = route_matches(r, ev, NULL) == 1;
	chatops_gather_facts(c, r, ev, incidents, &out->facts, &out->room);
	out->start_txn = start_to_edit(st, cfg, r, ev, key);
	out->facts.start_txn = out->start_txn;
}

void report_facts_clear(struct report_facts *f)
{
	chatops_facts_clear(&f->room);
	free(f->start_txn);
	f->start_txn = NULL;
}
