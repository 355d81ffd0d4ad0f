/* chatops_escalate: calendar work on open failures: escalation to the on-call and the
 * fallback list, forwarding to owners' rooms, and the daily digest. */
#include "chatops_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "digest.h"
#include "duration.h"
#include "log.h"
#include "relations.h"
#include "rotation.h"
#include "strbuf.h"
#include "textutil.h"

/* ---- the daily digest ------------------------------------------------------------ */


/* Posts route r's digest when its time has come: the open failures nobody claimed, with
 * age and owners; nothing when there are none. The next time is kept in the store, so a
 * restart neither repeats nor skips a day (a digest missed while away comes late, once). */
static void check_digest(struct chatops *c, const struct route *r, const struct config_route_chatops *rco)
{
	char kv[128];
	snprintf(kv, sizeof kv, "digest.next.%s", r->name);
	time_t now = (time_t)(clock_wall_ms() / 1000);
	char *saved = c->host.kv_get(kv, c->host.data);
	time_t due = saved ? (time_t)strtoll(saved, NULL, 10) : 0;
	free(saved);
	if (due && now < due)
		return;
	if (due) {
		const struct room_state *rs = NULL;
		for (size_t i = 0; i < c->n_rooms && !rs; i++)
			if (strcmp(c->rooms[i].room, r->room) == 0)
				rs = &c->rooms[i];
		struct store_failure *open = NULL;
		size_t n = 0;
		store_failures_open(c->store, r->room, &open, &n);
		struct digest_failure *list = xcalloc(n ? n : 1, sizeof *list);
		char **whats = xcalloc(n ? n : 1, sizeof *whats);
		cJSON **markers = xcalloc(n ? n : 1, sizeof *markers);
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			struct store_failure *f = &open[i];
			if (strcmp(f->route, r->name) != 0 || !chatops_unclaimed(c, f))
				continue;
			struct strbuf what = STRBUF_INIT;
			chatops_describe_thread_key(f->thread_key, &what);
			whats[k] = strbuf_detach(&what);
			markers[k] = cJSON_Parse(f->content_json);
			const cJSON *owners = cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(markers[k], FAILURE_MARKER), "owners");
			size_t n_owners = (size_t)cJSON_GetArraySize(owners);
			const char **ids = xcalloc(n_owners ? n_owners : 1, sizeof *ids);
			size_t m = 0;
			const cJSON *o;
			cJSON_ArrayForEach(o, owners)
				if (cJSON_IsString(o))
					ids[m++] = o->valuestring;
			list[k] = (struct digest_failure){.what = whats[k],
							 .room_id = rs ? rs->room_id : NULL,
							 .event_id = f->event_id,
							 .opened_ms = f->opened_ms,
							 .count = f->count,
							 .owners = ids,
							 .n_owners = m};
			k++;
		}
		cJSON *content = digest_content_new(list, k, clock_wall_ms(), rco->digest_timezone);
		if (content) {
			char key[200];
			snprintf(key, sizeof key, "%s|%lld", r->name, (long long)due);
			c->host.post(r->room, "digest", key, content, c->host.data);
			log_kv(ZLOG_INFO, "daily digest posted", "route", r->name, "room", r->room, NULL);
			cJSON_Delete(content);
		} else {
			log_kv(ZLOG_DEBUG, "daily digest: nothing open and unclaimed", "route", r->name, NULL);
		}
		for (size_t i = 0; i < k; i++) {
			free((void *)list[i].owners);
			free(whats[i]);
			cJSON_Delete(markers[i]);
		}
		free(list);
		free(whats);
		free(markers);
		store_failures_free(open, n);
	}
	char next[32];
	snprintf(next, sizeof next, "%lld", (long long)digest_next_at(rco->digest_minute, rco->digest_timezone, now));
	c->host.kv_set(kv, next, c->host.data);
}

void chatops_check_digests(struct chatops *c)
{
	if (c->n_rooms == 0)
		return;
	for (size_t i = 0; i < c->cfg->n_routes; i++) {
		const struct config_route_chatops *rco = config_route_chatops(c->cfg, &c->cfg->routes[i]);
		if (rco->digest_minute >= 0)
			check_digest(c, &c->cfg->routes[i], rco);
	}
}


/* ---- escalation of unclaimed failures --------------------------------------- */

/* Bits of a failure's `escalated` mask beyond the rotation's steps: the notice to the
 * i-th forward room of its owners went out. */
#define FORWARD_SENT(i) (1u << (2 + (i)))

/* Whether nobody claimed or resolved the failure. */
bool chatops_unclaimed(struct chatops *c, const struct store_failure *f)
{
	char **users = NULL;
	size_t n = 0, m = 0;
	store_claims_of(c->store, f->txn_id, "claim", &users, &n);
	chatops_free_users(users, n);
	store_claims_of(c->store, f->txn_id, "resolve", &users, &m);
	chatops_free_users(users, m);
	return n == 0 && m == 0;
}

/* Whether its route pings anyone: a route that mentions nobody on a new failure does not
 * ping later either. */
static bool route_pings(struct chatops *c, const struct store_failure *f)
{
	const struct route *r = config_find_route(c->cfg, f->route);
	return r && config_route_chatops(c->cfg, r)->mention_oncall;
}

/* Posts the steps of `due` as one message in the failure's thread, pinging who they name. */
static void post_escalation(struct chatops *c, const struct store_failure *f, unsigned due, time_t now)
{
	const struct rotation_config *rc = &c->cfg->chatops.rotation;
	const char **who = xcalloc(rc->n_fallback + 1, sizeof *who);
	size_t n = 0;
	struct rotation_oncall oc;
	bool oncall = (due & ROTATION_STEP_PING_ONCALL) && c->cfg->chatops.oncall &&
		      rotation_oncall(rc, now, &oc) == 0 && oc.user;
	if (oncall)
		who[n++] = oc.user;
	if (due & ROTATION_STEP_FALLBACK)
		for (size_t i = 0; i < rc->n_fallback; i++)
			who[n++] = rc->fallback[i];
	char age[32];
	duration_format((double)(now - f->opened_ms / 1000), age, sizeof age);
	struct strbuf text = STRBUF_INIT;
	strbuf_printf(&text, "\u23F0 Still unclaimed after %s.", age);
	if (due & ROTATION_STEP_FALLBACK)
		strbuf_puts(&text, " Escalating: can one of you take it?");
	else if (oncall)
		strbuf_puts(&text, " You are on call: can you take it?");
	else
		strbuf_puts(&text, " Nobody is on call right now.");
	strbuf_printf(&text, " React %s to claim it.", c->cfg->chatops.claim_reaction);
	cJSON *content = chatops_notice_new(strbuf_str(&text));
	relations_add_mentions(content, who, n);
	relations_make_thread_reply(content, f->event_id, NULL);
	if (!f->event_id)
		relations_point_at_txn(content, f->txn_id);
	char key[300];
	snprintf(key, sizeof key, "%s|escalate|%u", f->txn_id, due);
	c->host.post(f->room, "escalation", key, content, c->host.data);
	log_kv(ZLOG_INFO, "unclaimed failure escalated", "room", f->room, "route", f->route, "key", f->event_key,
	       "step", (due & ROTATION_STEP_FALLBACK) ? "fallback" : "oncall", "oncall", oncall ? oc.user : NULL, NULL);
	cJSON_Delete(content);
	strbuf_free(&text);
	free(who);
}

/* A short notice in another room (an owners rule's forward_room) linking to the failure. */
static void post_forward(struct chatops *c, const struct store_failure *f, const char *forward_room, int index)
{
	const struct room_state *rs = NULL;
	for (size_t i = 0; i < c->n_rooms && !rs; i++)
		if (strcmp(c->rooms[i].room, f->room) == 0)
			rs = &c->rooms[i];
	struct strbuf what = STRBUF_INIT, text = STRBUF_INIT, html = STRBUF_INIT;
	chatops_describe_thread_key(f->thread_key, &what);
	struct strbuf link = STRBUF_INIT;
	textutil_matrix_to_event(&link, rs ? rs->room_id : f->room, f->event_id);
	strbuf_printf(&text, "\u26A0\uFE0F Forwarded from %s: %s failed. %s", f->room, strbuf_str(&what),
		      strbuf_str(&link));
	strbuf_puts(&html, "\u26A0\uFE0F Forwarded from ");
	strbuf_puts_html(&html, f->room);
	strbuf_printf(&html, ": <a href=\"%s\">", strbuf_str(&link));
	strbuf_puts_html(&html, strbuf_str(&what));
	strbuf_puts(&html, "</a> failed.");
	cJSON *content = chatops_notice_new(strbuf_str(&text));
	cJSON_AddStringToObject(content, "format", "org.matrix.custom.html");
	cJSON_AddStringToObject(content, "formatted_body", strbuf_str(&html));
	char key[300];
	snprintf(key, sizeof key, "%s|forward|%d", f->txn_id, index);
	c->host.post(forward_room, "forward", key, content, c->host.data);
	log_kv(ZLOG_INFO, "failure forwarded", "room", f->room, "to", forward_room, "key", f->event_key, NULL);
	cJSON_Delete(content);
	strbuf_free(&link);
	strbuf_free(&what);
	strbuf_free(&text);
	strbuf_free(&html);
}

/* Takes the escalation steps and forwards that came due for one open failure; returns
 * when the next one is due (Unix ms), 0 when none is left. */
static int64_t escalate_one(struct chatops *c, struct store_failure *f, int64_t now_ms)
{
	time_t now = (time_t)(now_ms / 1000), t0 = (time_t)(f->opened_ms / 1000);
	cJSON *content = cJSON_Parse(f->content_json);
	const cJSON *marker = cJSON_GetObjectItemCaseSensitive(content, FAILURE_MARKER);
	const cJSON *delay = cJSON_GetObjectItemCaseSensitive(marker, "escalate_after_s");
	const cJSON *forward = cJSON_GetObjectItemCaseSensitive(marker, "forward");
	/* The owners' own delay before the on-call is pinged replaces the room's. */
	struct rotation_config rc = c->cfg->chatops.rotation;
	if (cJSON_IsNumber(delay) && delay->valuedouble >= 0 && delay->valuedouble <= 30 * 86400.0)
		rc.escalate_after_s = (long long)delay->valuedouble;
	bool open = chatops_unclaimed(c, f);
	unsigned done = f->escalated;
	int64_t next = 0;
	if (open) {
		unsigned due = rotation_escalation_due(&rc, t0, now) & ~done;
		if (due) {
			post_escalation(c, f, due, now);
			done |= due;
		}
		time_t later = rotation_escalation_next(&rc, t0, done);
		next = later ? (int64_t)later * 1000 : 0;
	}
	/* A forward "with the failure" (after 0) goes out whatever happens; a later one only
	 * while nobody has taken the failure. It waits for the message's event id to link. */
	int i = 0;
	const cJSON *fw;
	cJSON_ArrayForEach(fw, forward)
	{
		const cJSON *room = cJSON_GetObjectItemCaseSensitive(fw, "room");
		const cJSON *after = cJSON_GetObjectItemCaseSensitive(fw, "after_s");
		if (i >= CHATOPS_OWNERS_MAX || !cJSON_IsString(room) || !cJSON_IsNumber(after))
			break;
		int64_t at = f->opened_ms + (int64_t)after->valuedouble * 1000;
		if (!(done & FORWARD_SENT(i)) && (open || after->valuedouble == 0)) {
			if (now_ms >= at && f->event_id) {
				post_forward(c, f, room->valuestring, i);
				done |= FORWARD_SENT(i);
			} else {
				int64_t when = now_ms >= at ? now_ms + 1000 : at; /* not delivered yet */
				if (!next || when < next)
					next = when;
			}
		}
		i++;
	}
	if (done != f->escalated) {
		f->escalated = done;
		store_failure_set_escalated(c->store, f->txn_id, done);
	}
	cJSON_Delete(content);
	return next;
}

/* Takes the steps that came due for the open failures. Steps missed while the bridge was
 * away are taken together, in one message. */
void chatops_check_escalations(struct chatops *c)
{
	if ((!c->cfg->chatops.oncall && !c->cfg->owners.n_rules) || c->n_rooms == 0)
		return;
	int64_t now_ms = clock_wall_ms();
	if (c->next_escalation_ms && now_ms < c->next_escalation_ms)
		return;
	struct store_failure *open;
	size_t n;
	if (store_failures_open(c->store, NULL, &open, &n) != 0)
		return;
	int64_t next = INT64_MAX;
	for (size_t i = 0; i < n; i++) {
		if (!route_pings(c, &open[i]))
			continue;
		int64_t later = escalate_one(c, &open[i], now_ms);
		if (later && later < next)
			next = later;
	}
	store_failures_free(open, n);
	/* Nothing pending: look again in a minute (the rotation may change on reload). */
	c->next_escalation_ms = next == INT64_MAX ? now_ms + 60000 : next;
}
