/* bridge_details: the report's second look (issue #16). Once the details module has fetched
 * why a posted report's builds failed, the report is rendered again, the same way and now
 * with those details, and its message is edited: a failure the room can claim through
 * chatops (which keeps its claim lines and stores the new words for later claim edits),
 * anything else (a repeat in a thread, a bridge without chatops) directly. */
#include "bridge_internal.h"

#include <stdlib.h>
#include <string.h>

#include "details.h"
#include "log.h"
#include "relations.h"
#include "report.h"

const struct build_details *bridge_details_of(const char *build_uuid, void *data)
{
	struct bridge *b = data;
	return details_of(b->details, build_uuid);
}

/* Route `name` of the configuration in force, and its index (templates are per index). */
static const struct route *route_named(const struct config *cfg, const char *name, size_t *index)
{
	for (size_t i = 0; i < cfg->n_routes; i++)
		if (strcmp(cfg->routes[i].name, name) == 0) {
			*index = i;
			return &cfg->routes[i];
		}
	return NULL;
}

int bridge_details_edit(const struct details_posted *p, void *data)
{
	struct bridge *b = data;
	size_t i = 0;
	const struct route *r = route_named(b->cfg, p->route, &i);
	if (!r) {
		log_kv(ZLOG_WARN, "details: the route is gone since a reload; its report is not edited", "route",
		       p->route, "key", p->key, NULL);
		return -1;
	}
	char err[256];
	struct zuul_event *ev = zuul_event_parse(p->payload, p->payload_len, err, sizeof err);
	if (!ev)
		return -1; /* decoded once already: cannot happen */
	struct chatops_owners owners;
	struct report_context ctx;
	bridge_report_context(b, r, ev, &owners, &ctx);
	cJSON *content = bridge_compose(b, r, i, ev, p->key, &ctx, &owners, p->txn, p->repeat);
	int rc = 0;
	if (p->repeat || chatops_failure_rerendered(b->chatops, p->txn, content, "details") != 1) {
		/* Its own edit: whoever the message mentions was pinged by it already. */
		const char **mentioned = relations_mentioned_new(content);
		cJSON *edit = relations_edit_new(content, NULL, mentioned);
		free(mentioned);
		relations_point_at_txn(edit, p->txn);
		rc = bridge_queue_content(b, p->route, p->room, p->key, "details-edit", edit) < 0 ? -1 : 0;
		cJSON_Delete(edit);
	}
	cJSON_Delete(content);
	zuul_event_free(ev);
	return rc;
}
