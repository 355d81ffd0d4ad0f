/* chatops_actions_incident: acting on an infrastructure incident (issue #17). The items of
 * the reports an incident absorbed are remembered (the incident keeps only build members);
 * `recheck` in its thread, or 🔁 on its message, re-enqueues each item once (at most
 * INCIDENT_RECHECK_MAX), one call and audit line each, answered by one summary. */
#include "chatops_actions_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "incident.h"
#include "log.h"
#include "store_actions.h"

/* The items of absorbed reports, per incident id: {"ID": {"at": ms, "items": [item...],
 * "more": n}}, one JSON value in the store's key-value table. */
#define KV_INCIDENT_ITEMS "actions.incident_items"
/* One recheck of an incident re-enqueues at most this many items: a node pool that broke
 * a whole tenant's periodic pipeline must not become a thousand calls by one reaction. */
#define INCIDENT_RECHECK_MAX 20
/* Items kept per incident (the rest only counted), incidents kept, and for how long after
 * their last absorbed report: an incident closes after its window, its recheck comes soon. */
#define INCIDENT_ITEMS_KEEP 100
#define INCIDENT_ITEMS_INCIDENTS 100
#define INCIDENT_ITEMS_KEEP_MS (48LL * 3600 * 1000)

bool actions_is_incident(const struct store_failure *f)
{
	return f->thread_key && strncmp(f->thread_key, "incident|", 9) == 0 && f->event_key;
}

/* ---- remembering the absorbed items ------------------------------------------------- */

static bool items_have(const cJSON *items, const char *key)
{
	const cJSON *it;
	bool found = false;
	cJSON_ArrayForEach(it, items)
	{
		char *k = actions_item_key(it);
		found = found || strcmp(k, key) == 0;
		free(k);
	}
	return found;
}

/* Drops entries older than the keep time, then the oldest past INCIDENT_ITEMS_INCIDENTS. */
static void prune(cJSON *all, int64_t now)
{
	for (cJSON *e = all->child, *next; e; e = next) {
		next = e->next;
		const cJSON *at = cJSON_GetObjectItemCaseSensitive(e, "at");
		if (!cJSON_IsNumber(at) || at->valuedouble < (double)(now - INCIDENT_ITEMS_KEEP_MS))
			cJSON_DeleteItemFromObjectCaseSensitive(all, e->string);
	}
	while (cJSON_GetArraySize(all) > INCIDENT_ITEMS_INCIDENTS) {
		cJSON *oldest = NULL;
		for (cJSON *e = all->child; e; e = e->next)
			if (!oldest || cJSON_GetObjectItemCaseSensitive(e, "at")->valuedouble <
					       cJSON_GetObjectItemCaseSensitive(oldest, "at")->valuedouble)
				oldest = e;
		cJSON_DeleteItemFromObjectCaseSensitive(all, oldest->string);
	}
}

static void add_item(cJSON *all, const char *id, const cJSON *item, int64_t now)
{
	cJSON *e = cJSON_GetObjectItemCaseSensitive(all, id);
	if (!cJSON_IsObject(e)) {
		cJSON_DeleteItemFromObjectCaseSensitive(all, id);
		e = cJSON_AddObjectToObject(all, id);
		cJSON_AddArrayToObject(e, "items");
		cJSON_AddNumberToObject(e, "more", 0);
		cJSON_AddNumberToObject(e, "at", 0);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(e, "at");
	cJSON_AddNumberToObject(e, "at", (double)now);
	cJSON *items = cJSON_GetObjectItemCaseSensitive(e, "items");
	if (!cJSON_IsArray(items)) { /* not ours: start it afresh */
		cJSON_DeleteItemFromObjectCaseSensitive(e, "items");
		items = cJSON_AddArrayToObject(e, "items");
	}
	char *key = actions_item_key(item);
	if (!items_have(items, key)) {
		if (cJSON_GetArraySize(items) < INCIDENT_ITEMS_KEEP) {
			cJSON_AddItemToArray(items, cJSON_Duplicate(item, true));
		} else {
			cJSON *more = cJSON_GetObjectItemCaseSensitive(e, "more");
			double n = cJSON_IsNumber(more) ? more->valuedouble : 0;
			cJSON_DeleteItemFromObjectCaseSensitive(e, "more");
			cJSON_AddNumberToObject(e, "more", n + 1);
		}
	}
	free(key);
}

void chatops_actions_incident_observed(struct chatops *c, const struct zuul_event *ev,
				       const struct incident_outcome *out)
{
	if (!c->cfg->actions.enabled || (!out->absorbed && !out->n_retro))
		return;
	int64_t now = clock_wall_ms();
	cJSON *all = chatops_kv_json(c, KV_INCIDENT_ITEMS, cJSON_Object);
	if (out->absorbed) {
		cJSON *holder = cJSON_CreateObject();
		chatops_marker_add_item(holder, ev);
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(holder, "item");
		for (size_t i = 0; i < out->n_opened; i++)
			add_item(all, out->opened[i], item, now);
		for (size_t i = 0; i < out->n_grown; i++)
			add_item(all, out->grown[i], item, now);
		cJSON_Delete(holder);
	}
	/* An earlier report an incident absorbed afterwards: its item is in its own marker. */
	for (size_t i = 0; i < out->n_retro; i++) {
		struct store_failure *list;
		size_t n;
		if (store_failures_by_key(c->store, out->retro[i].event_key, &list, &n) != 0)
			continue;
		for (size_t j = 0; j < n; j++) {
			cJSON *content = cJSON_Parse(list[j].content_json ? list[j].content_json : "");
			const cJSON *item = cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(content, FAILURE_MARKER), "item");
			if (cJSON_IsObject(item))
				add_item(all, out->retro[i].incident_id, item, now);
			cJSON_Delete(content);
		}
		store_failures_free(list, n);
	}
	prune(all, now);
	chatops_kv_put_json(c, KV_INCIDENT_ITEMS, all);
	cJSON_Delete(all);
}

/* ---- the batch: one incident's rechecks, answered together ---------------------------- */

struct actions_batch {
	char *room, *root, *reply_to, *event_id, *user;
	size_t n, pending;  /* calls made, calls not answered yet */
	size_t accepted;
	char **lines;       /* per call: "- what: outcome" */
	char *tail;         /* items left out and skipped, said after the lines; may be NULL */
};

static void batch_free(struct actions_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->lines[i]);
	free(b->lines);
	free(b->room);
	free(b->root);
	free(b->reply_to);
	free(b->event_id);
	free(b->user);
	free(b->tail);
	free(b);
}

void actions_batch_drop(struct call *k)
{
	if (k->batch && --k->batch->pending == 0)
		batch_free(k->batch);
	k->batch = NULL;
}

void actions_batch_answer(struct chatops *c, struct call *k, enum outcome o, const char *reason)
{
	struct actions_batch *b = k->batch;
	struct strbuf line = STRBUF_INIT;
	strbuf_puts(&line, "- ");
	actions_describe_item(&k->it, &line);
	if (o == OUT_ACCEPTED)
		strbuf_puts(&line, ": accepted");
	else if (o == OUT_REFUSED)
		strbuf_printf(&line, ": refused by Zuul: %s", reason ? reason : "no reason given");
	else
		strbuf_printf(&line, ": Zuul could not be reached (%s)", reason ? reason : "no answer");
	free(b->lines[k->batch_slot]);
	b->lines[k->batch_slot] = strbuf_detach(&line);
	b->accepted += o == OUT_ACCEPTED;
	if (o == OUT_ACCEPTED)
		actions_follow_add(c, k);
	k->batch = NULL;
	if (--b->pending)
		return;
	struct strbuf text = STRBUF_INIT;
	strbuf_printf(&text, "%s asked for the recheck of %zu item%s of this incident: accepted by Zuul: %zu of %zu.",
		      b->user, b->n, b->n == 1 ? "" : "s", b->accepted, b->n);
	for (size_t i = 0; i < b->n; i++)
		strbuf_printf(&text, "\n%s", b->lines[i] ? b->lines[i] : "- (no answer)");
	if (b->tail)
		strbuf_printf(&text, "\n%s", b->tail);
	char key[300];
	snprintf(key, sizeof key, "%s|zuul", b->event_id);
	actions_post_notice(c, b->room, b->root, b->reply_to, key, strbuf_str(&text));
	store_action_set_state(c->store, b->event_id,
			       b->accepted == b->n ? "accepted" : b->accepted ? "partly-accepted" : "refused");
	strbuf_free(&text);
	batch_free(b);
}

/* ---- the recheck of an incident ---------------------------------------------------- */

/* The incident's items, identical ones once, and how many more it had than it kept. */
static cJSON *incident_items(struct chatops *c, const char *id, long *more)
{
	cJSON *all = chatops_kv_json(c, KV_INCIDENT_ITEMS, cJSON_Object);
	cJSON *e = cJSON_GetObjectItemCaseSensitive(all, id);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "more");
	*more = cJSON_IsNumber(m) ? (long)m->valuedouble : 0;
	cJSON *items = cJSON_DetachItemFromObjectCaseSensitive(e, "items");
	cJSON_Delete(all);
	cJSON *out = cJSON_CreateArray();
	const cJSON *it;
	cJSON_ArrayForEach(it, items)
	{
		char *key = actions_item_key(it);
		if (cJSON_IsObject(it) && !items_have(out, key))
			cJSON_AddItemToArray(out, cJSON_Duplicate(it, true));
		free(key);
	}
	cJSON_Delete(items);
	return out;
}

/* One item of the recheck: rechecked, or skipped for why (owned). */
struct planned {
	struct action_item it;
	struct zuul_admin_request req;
	const char *api;
	char *denied;
};

static void incident_recheck(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
			     const struct store_failure *f, const char *reply_to)
{
	long more = 0;
	cJSON *items = incident_items(c, f->event_key, &more);
	size_t n_items = (size_t)cJSON_GetArraySize(items);
	struct planned plan[INCIDENT_RECHECK_MAX];
	size_t n_plan = 0, n_allowed = 0;
	struct strbuf skipped = STRBUF_INIT, why = STRBUF_INIT;
	size_t n_skipped = 0;
	int seen = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, items)
	{
		if (seen++ == INCIDENT_RECHECK_MAX)
			break;
		struct action_item it;
		actions_item_from_json(item, &it);
		const struct config_actions_tenant *t = config_actions_tenant(&c->cfg->actions, it.tenant);
		struct zuul_admin_request r = {0};
		const char *problem = NULL;
		strbuf_reset(&why);
		const char *denied = actions_denial(c, rs, ev->sender, t, it.tenant, &why);
		if (!denied && actions_build_request("recheck", &it, NULL, &r, &problem) != 0)
			denied = problem;
		if (denied) {
			strbuf_puts(&skipped, "\n- ");
			actions_describe_item(&it, &skipped);
			strbuf_printf(&skipped, " (tenant %s): %s", it.tenant ? it.tenant : "?", denied);
			n_skipped++;
		} else {
			n_allowed++;
		}
		plan[n_plan++] = (struct planned){.it = it, .req = r, .api = t ? t->api : NULL,
						  .denied = denied ? xstrdup(denied) : NULL};
	}
	size_t left_out = (n_items > INCIDENT_RECHECK_MAX ? n_items - INCIDENT_RECHECK_MAX : 0) + (size_t)more;
	struct strbuf tail = STRBUF_INIT;
	if (left_out)
		strbuf_printf(&tail, "%zu more item%s left out: one recheck takes at most %d.", left_out,
			      left_out == 1 ? " was" : "s were", INCIDENT_RECHECK_MAX);
	if (n_skipped)
		strbuf_printf(&tail, "%sNot rechecked (%zu):%s", tail.len ? "\n" : "", n_skipped, strbuf_str(&skipped));

	if (n_items == 0) {
		actions_deny(c, rs, ev, "recheck", NULL, f->event_id,
			     "the bridge knows no Zuul item of this incident (its reports came before the bridge "
			     "remembered them, or too long ago)");
	} else if (n_allowed == 0) {
		strbuf_reset(&why);
		strbuf_printf(&why, "no item of this incident may be rechecked by %s:%s", ev->sender,
			      strbuf_str(&skipped));
		actions_deny(c, rs, ev, "recheck", NULL, f->event_id, strbuf_str(&why));
	} else {
		cJSON *req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "incident", f->event_key);
		cJSON_AddStringToObject(req, "root", f->event_id);
		char *json = cJSON_PrintUnformatted(req);
		struct store_action a = {.event_id = (char *)ev->event_id, .kind = "recheck", .room = rs->room,
					 .user_id = (char *)ev->sender, .request_json = json, .state = "sent",
					 .created_ms = clock_wall_ms()};
		int rec = store_action_begin(c->store, &a);
		cJSON_free(json);
		cJSON_Delete(req);
		if (rec == 1) {
			/* The skipped items are audited once, with the event that asked. */
			for (size_t i = 0; i < n_plan; i++)
				if (plan[i].denied) {
					actions_audit("recheck", ev->sender, &plan[i].it, OUT_DENIED, 0, plan[i].denied,
						      ev->event_id);
					actions_count(c, OUT_DENIED);
				}
			struct actions_batch *b = xcalloc(1, sizeof *b);
			*b = (struct actions_batch){.room = xstrdup(rs->room), .root = xstrdup(f->event_id),
						    .reply_to = xstrdup(reply_to), .event_id = xstrdup(ev->event_id),
						    .user = xstrdup(ev->sender), .n = n_allowed, .pending = n_allowed,
						    .lines = xcalloc(n_allowed, sizeof(char *)),
						    .tail = tail.len ? strbuf_detach(&tail) : NULL};
			log_kv(ZLOG_INFO, "rechecking an incident's items", "incident", f->event_key, "user", ev->sender,
			       "event_id", ev->event_id, NULL);
			for (size_t i = 0, slot = 0; i < n_plan; i++) {
				if (plan[i].denied)
					continue;
				struct call *k = actions_call_new("recheck", rs->room, ev->event_id, f->event_id, reply_to,
								  ev->sender, plan[i].api);
				k->what = actions_describe_action("recheck", &plan[i].it, NULL);
				k->it = plan[i].it;
				k->req = plan[i].req;
				memset(&plan[i], 0, sizeof plan[i]);
				k->batch = b;
				k->batch_slot = slot++;
				actions_queue_call(c, k);
			}
		} else if (rec == 0) {
			log_kv(ZLOG_DEBUG, "an action's event was seen before; not acting again", "event_id", ev->event_id,
			       NULL);
		}
	}
	for (size_t i = 0; i < n_plan; i++) {
		actions_item_clear(&plan[i].it);
		zuul_admin_request_clear(&plan[i].req);
		free(plan[i].denied);
	}
	strbuf_free(&tail);
	strbuf_free(&skipped);
	strbuf_free(&why);
	cJSON_Delete(items);
}

void actions_incident_command(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
			      const char *kind, const struct store_failure *f)
{
	if (strcmp(kind, "recheck") == 0) {
		incident_recheck(c, rs, ev, f, ev->event_id);
		return;
	}
	struct strbuf text = STRBUF_INIT;
	strbuf_printf(&text, "A %s acts on one failure, not on an incident: say \"%s %s\" in that failure's thread.",
		      kind, c->cfg->chatops.command_prefix, kind);
	actions_post_notice(c, rs->room, f->event_id, ev->event_id, ev->event_id, strbuf_str(&text));
	strbuf_free(&text);
}

void actions_incident_reaction(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
			       const struct store_failure *f)
{
	incident_recheck(c, rs, ev, f, f->event_id);
}
