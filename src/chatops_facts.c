/* chatops_facts: the room side's answer to "what is there to know before deciding
 * what this report becomes?" (disposition.h). Read-only: deciding must not change the
 * room state, so `explain` can ask the same questions of a live state_dir. */
#include <string.h>

#include "chatops_internal.h"

void chatops_gather_facts(struct chatops *c, const struct route *r, const struct zuul_event *ev,
			  const struct incident_outcome *incidents, struct disposition_facts *facts,
			  struct chatops_facts *own)
{
	memset(own, 0, sizeof *own);
	if (!c)
		return;
	facts->threads = c->cfg->chatops.threads;
	facts->away = c->away_since_ms > 0;
	chatops_failure_facts(c, r->name, ev, facts, own);
	facts->muted_until_ms = chatops_mute_until(c, r->room, ev);
	chatops_incident_facts(c, incidents, facts, own);
}

void chatops_facts_clear(struct chatops_facts *own)
{
	store_failure_clear(&own->streak);
	store_failure_clear(&own->repeat);
	strbuf_free(&own->incident);
}
