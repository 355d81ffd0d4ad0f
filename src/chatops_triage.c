/* chatops_triage: infrastructure incidents in the room: the tracker (incident.c) fed with
 * failure reports, its messages posted, grown, claimed like failures and closed. */
#include "chatops_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "relations.h"
#include "strbuf.h"

/* ---- triage: infrastructure incidents ------------------------------------------ */

static void triage_options(const struct config *cfg, struct incident_options *o)
{
	*o = (struct incident_options){.infra_results = (const char *const *)cfg->triage.infra_results,
				       .n_infra_results = cfg->triage.n_infra_results,
				       .job_window_s = cfg->triage.job_window_s,
				       .job_min_projects = cfg->triage.job_min_projects};
}

static void incidents_save(struct chatops *c)
{
	char *json = incident_tracker_save(c->incidents);
	c->host.kv_set(KV_INCIDENTS, json, c->host.data);
	free(json);
}

/* The incident message of a route: one per (route, incident), keyed so. */
static void incident_key(const struct route *r, const char *id, char *key, size_t len)
{
	snprintf(key, len, "%s|%s", r->name, id);
}

/* Edits an incident message that exists to show the incident as it stands, claims
 * included (the stored content is what claim edits are rendered from). */
static void incident_refresh(struct chatops *c, const char *txn, const char *id, const char *change)
{
	struct store_failure f;
	if (store_failure_by_txn(c->store, txn, &f) == 1) {
		cJSON *content = incident_content_new(c->incidents, id, clock_wall_ms());
		if (content) {
			char *json = cJSON_PrintUnformatted(content);
			store_failure_set_content(c->store, txn, json);
			free(f.content_json);
			f.content_json = xstrdup(json);
			cJSON_free(json);
			cJSON_Delete(content);
			chatops_post_claim_edit(c, &f, change);
		}
	}
	store_failure_clear(&f);
}

bool chatops_triage(struct chatops *c, const struct zuul_event *ev, const char *key, struct incident_outcome *out)
{
	memset(out, 0, sizeof *out);
	if (!c || !c->incidents || !chatops_is_failure_action(ev->action))
		return false;
	bool absorbed = incident_observe(c->incidents, ev, key, clock_wall_ms(), out) == 1;
	if (out->n_opened || out->n_grown)
		incidents_save(c);
	chatops_actions_incident_observed(c, ev, out);
	/* Alerts posted before a spread incident formed point at it from their thread. */
	for (size_t i = 0; i < out->n_retro; i++) {
		struct store_failure *list;
		size_t n;
		if (store_failures_by_key(c->store, out->retro[i].event_key, &list, &n) != 0)
			continue;
		for (size_t j = 0; j < n; j++) {
			struct store_failure *f = &list[j];
			struct incident_info info;
			if (incident_get(c->incidents, out->retro[i].incident_id, &info) != 0)
				continue;
			struct strbuf text = STRBUF_INIT;
			strbuf_printf(&text, "\u26A0\uFE0F Part of an infrastructure incident: %s in tenant %s, "
					     "%zu projects so far. It is followed in the incident's message.",
				      info.cause, *info.tenant ? info.tenant : "(none)", info.n_projects);
			cJSON *note = chatops_notice_new(strbuf_str(&text));
			relations_make_thread_reply(note, f->event_id, NULL);
			if (!f->event_id)
				relations_point_at_txn(note, f->txn_id);
			char nkey[400];
			snprintf(nkey, sizeof nkey, "%s|%s", f->txn_id, out->retro[i].incident_id);
			c->host.post(f->room, "incident-note", nkey, note, c->host.data);
			cJSON_Delete(note);
			strbuf_free(&text);
		}
		store_failures_free(list, n);
	}
	return absorbed;
}

void chatops_incident_facts(struct chatops *c, const struct incident_outcome *incidents,
			    struct disposition_facts *facts, struct chatops_facts *own)
{
	if (!incidents->absorbed || !c->incidents)
		return;
	facts->absorbed = true;
	/* The report joined an incident it opened or grew. */
	const char *id = incidents->n_opened ? incidents->opened[0] : incidents->n_grown ? incidents->grown[0] : NULL;
	struct incident_info info;
	if (id && incident_get(c->incidents, id, &info) == 0) {
		strbuf_printf(&own->incident, "%s (%s in tenant %s, %zu project%s so far)", id, info.cause,
			      *info.tenant ? info.tenant : "(none)", info.n_projects, info.n_projects == 1 ? "" : "s");
		facts->incident = strbuf_str(&own->incident);
	}
}

/* Posts the incident into r's room, or edits it there when it was posted before (a route
 * that matched only later members posts it then). */
static void incident_post_one(struct chatops *c, const struct route *r, bool mention, const char *id)
{
	char key[400];
	incident_key(r, id, key, sizeof key);
	char *txn = c->host.txn_of("incident", key, c->host.data);
	struct store_failure f;
	bool exists = store_failure_by_txn(c->store, txn, &f) == 1;
	store_failure_clear(&f);
	if (exists) {
		struct incident_info info;
		if (incident_get(c->incidents, id, &info) == 0) {
			char change[64];
			snprintf(change, sizeof change, "grew-%zu", info.n_members);
			incident_refresh(c, txn, id, change);
		}
	} else {
		cJSON *content = incident_content_new(c->incidents, id, clock_wall_ms());
		if (content) {
			if (mention)
				chatops_mention(c, &(struct zuul_event){.action = "failure"}, NULL, content);
			/* A failure marker, so a lost state_dir can find the incident's claims too. */
			char tkey[300];
			snprintf(tkey, sizeof tkey, "incident|%s", id);
			cJSON_AddItemToObject(content, FAILURE_MARKER, chatops_marker_new(txn, r->name, id, tkey));
			if (c->host.post(r->room, "incident", key, content, c->host.data) == 0) {
				char *json = cJSON_PrintUnformatted(content);
				store_failure_add(c->store, txn, r->room, r->name, id, json, tkey, clock_wall_ms());
				cJSON_free(json);
				c->next_escalation_ms = 0;
				log_kv(ZLOG_INFO, "infrastructure incident posted", "route", r->name, "incident", id, NULL);
			}
			cJSON_Delete(content);
		}
	}
	free(txn);
}

void chatops_incidents_post(struct chatops *c, const struct route *r, bool mention, const struct incident_outcome *out)
{
	if (!c || !c->incidents)
		return;
	for (size_t i = 0; i < out->n_opened; i++)
		incident_post_one(c, r, mention, out->opened[i]);
	for (size_t i = 0; i < out->n_grown; i++)
		incident_post_one(c, r, mention, out->grown[i]);
}

/* Incidents whose window passed: their messages say so. */
void chatops_expire_incidents(struct chatops *c)
{
	if (!c->incidents)
		return;
	char **closed = NULL;
	if (incident_expire(c->incidents, clock_wall_ms(), &closed) == 0) {
		incident_ids_free(closed);
		return;
	}
	for (size_t i = 0; closed && closed[i]; i++) {
		for (size_t k = 0; k < c->cfg->n_routes; k++) {
			char key[400];
			incident_key(&c->cfg->routes[k], closed[i], key, sizeof key);
			char *txn = c->host.txn_of("incident", key, c->host.data);
			incident_refresh(c, txn, closed[i], "closed");
			free(txn);
		}
		log_kv(ZLOG_INFO, "infrastructure incident closed", "incident", closed[i], NULL);
	}
	incident_ids_free(closed);
	incidents_save(c);
}

void chatops_incidents_configure(struct chatops *c)
{
	if (!c->cfg->triage.enabled) {
		incident_tracker_free(c->incidents);
		c->incidents = NULL;
		return;
	}
	struct incident_options o;
	triage_options(c->cfg, &o);
	if (c->incidents) {
		incident_tracker_set_options(c->incidents, &o);
		return;
	}
	c->incidents = incident_tracker_new(&o);
	char *json = c->host.kv_get(KV_INCIDENTS, c->host.data);
	if (json && incident_tracker_load(c->incidents, json) != 0)
		log_kv(ZLOG_WARN, "the saved incidents are unreadable; starting without them", NULL);
	free(json);
}
