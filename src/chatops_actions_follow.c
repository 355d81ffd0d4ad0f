/* chatops_actions_follow: after an accepted recheck, the failure's thread links the
 * re-enqueued item's next report (issue #17, item 4). The wait is remembered in the store's
 * key-value table; the report's message is linked once the homeserver gave it an event id,
 * a report the room was spared (a success, a muted or absorbed one) by its build's page. */
#include "chatops_actions_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

/* [{"key", "item", "room", "root", "event_id", "user", "until", "group" (an incident's
 *   recheck: the acting event), and once its report came: "action", "txn" (the message posted
 *   for it, linked once delivered), and for a group's wait the "line" it adds and "ready_at"}] */
#define KV_FOLLOW "actions.follow"
/* An incident's rechecked items report at their own pace: their links are said together in
 * one notice once every item reported, or this long after the first one waiting to be said. */
#define FOLLOW_GROUP_WAIT_MS (10LL * 60 * 1000)
/* A recheck's report comes within hours; a wait older than this is forgotten. */
#define FOLLOW_KEEP_MS (24LL * 3600 * 1000)
/* Waits kept at most (the oldest go first): rechecks are a few a day. */
#define FOLLOW_MAX 200

struct actions_follow {
	cJSON *waits;      /* KV_FOLLOW, loaded at first use */
	char *posted_txn;  /* the message the report being routed got, noted by the bridge */
	char *posted_room; /* ...and its room (configured name) */
};

static struct actions_follow *follow_of(struct chatops *c)
{
	struct actions_follow **f = actions_follow_slot(c);
	if (!*f)
		*f = xcalloc(1, sizeof **f);
	if (!(*f)->waits)
		(*f)->waits = chatops_kv_json(c, KV_FOLLOW, cJSON_Array);
	return *f;
}

static void save(struct chatops *c, struct actions_follow *f)
{
	chatops_kv_put_json(c, KV_FOLLOW, f->waits);
}

void actions_follow_free(struct actions_follow *f)
{
	if (!f)
		return;
	cJSON_Delete(f->waits);
	free(f->posted_txn);
	free(f->posted_room);
	free(f);
}

void actions_follow_add(struct chatops *c, const struct call *k)
{
	if (!k->root || !k->it.tenant || !k->it.project)
		return;
	struct actions_follow *f = follow_of(c);
	cJSON *item = cJSON_CreateObject();
	actions_item_to_json(&k->it, item);
	char *key = actions_item_key(item);
	/* The same item followed for the same thread again: the newer wait replaces it. */
	for (cJSON *w = f->waits->child, *next; w; w = next) {
		next = w->next;
		const char *wkey = chatops_str_at(w, "key"), *root = chatops_str_at(w, "root");
		if (wkey && root && strcmp(wkey, key) == 0 && strcmp(root, k->root) == 0)
			cJSON_Delete(cJSON_DetachItemViaPointer(f->waits, w));
	}
	while (cJSON_GetArraySize(f->waits) >= FOLLOW_MAX)
		cJSON_DeleteItemFromArray(f->waits, 0);
	cJSON *w = cJSON_CreateObject();
	cJSON_AddStringToObject(w, "key", key);
	cJSON_AddItemToObject(w, "item", item);
	cJSON_AddStringToObject(w, "room", k->room);
	cJSON_AddStringToObject(w, "root", k->root);
	cJSON_AddStringToObject(w, "event_id", k->event_id);
	cJSON_AddStringToObject(w, "user", k->user);
	if (k->batch)
		cJSON_AddStringToObject(w, "group", k->event_id);
	cJSON_AddNumberToObject(w, "until", (double)(clock_wall_ms() + FOLLOW_KEEP_MS));
	cJSON_AddItemToArray(f->waits, w);
	save(c, f);
	free(key);
}

void chatops_actions_report_posted(struct chatops *c, const char *room, const char *txn)
{
	if (!c || !txn || !room || !c->cfg->actions.enabled)
		return;
	struct actions_follow *f = follow_of(c);
	if (!f->posted_txn) { /* the first route's message: one link is enough */
		f->posted_txn = xstrdup(txn);
		f->posted_room = xstrdup(room);
	}
}

/* The page of the report's first build with one (web_url, else log_url), or NULL. */
static const char *build_url(const struct zuul_event *ev)
{
	for (size_t i = 0; i < ev->n_builds; i++) {
		const char *u = ev->builds[i].web_url ? ev->builds[i].web_url : ev->builds[i].log_url;
		if (u && (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0))
			return u;
	}
	return NULL;
}

/* "its result, posted here: LINK" and the like: where w's report is; link: a URL or NULL. */
static void put_where(struct strbuf *text, const cJSON *w, const char *link, bool posted)
{
	strbuf_printf(text, "%s, ", chatops_str_at(w, "action") ?: "?");
	if (link)
		strbuf_printf(text, "%s %s", posted ? "posted here:" : "not posted here (quiet), its build:", link);
	else
		strbuf_puts(text, "not posted here (quiet), and it names no build page.");
}

/* The key a follow notice is posted once under: the acting event and the item w waits for
 * (its field separators made printable). */
static void notice_key(const cJSON *w, char *key, size_t size)
{
	snprintf(key, size, "%s|follow|%s", chatops_str_at(w, "event_id") ?: "", chatops_str_at(w, "key") ?: "");
	for (char *p = key; *p; p++)
		if (*p == '\x1f')
			*p = '/';
}

/* Says in the failure's thread where the next report is; link: a URL. Posted once per wait. */
static void say(struct chatops *c, const cJSON *w, const char *link, bool posted)
{
	struct action_item it;
	actions_item_from_json(cJSON_GetObjectItemCaseSensitive(w, "item"), &it);
	struct strbuf text = STRBUF_INIT;
	strbuf_puts(&text, "The next report of the recheck of ");
	actions_describe_item(&it, &text);
	strbuf_printf(&text, " (asked for by %s): ", chatops_str_at(w, "user") ?: "?");
	put_where(&text, w, link, posted);
	char key[400];
	notice_key(w, key, sizeof key);
	const char *root = chatops_str_at(w, "root");
	actions_post_notice(c, chatops_str_at(w, "room"), root, root, key, strbuf_str(&text));
	log_kv(ZLOG_INFO, "a recheck's next report is linked in its failure's thread", "root", root, "action",
	       chatops_str_at(w, "action"), "link", link, NULL);
	strbuf_free(&text);
	actions_item_clear(&it);
}

/* w's report is known (link: where). A wait of its own is said and goes (true); one of an
 * incident's recheck keeps its line for the group's notice (false). */
static bool arrived(struct chatops *c, cJSON *w, const char *link, bool posted)
{
	if (!chatops_str_at(w, "group")) {
		say(c, w, link, posted);
		return true;
	}
	struct action_item it;
	actions_item_from_json(cJSON_GetObjectItemCaseSensitive(w, "item"), &it);
	struct strbuf line = STRBUF_INIT;
	strbuf_puts(&line, "- ");
	actions_describe_item(&it, &line);
	strbuf_puts(&line, ": ");
	put_where(&line, w, link, posted);
	actions_item_clear(&it);
	cJSON_DeleteItemFromObjectCaseSensitive(w, "line");
	cJSON_AddStringToObject(w, "line", strbuf_str(&line));
	cJSON_AddNumberToObject(w, "ready_at", (double)clock_wall_ms());
	strbuf_free(&line);
	return false;
}

/* Says the lines of the group of waits that start at first, when every item of the group
 * reported or the oldest line waited FOLLOW_GROUP_WAIT_MS; those waits go. true: said. */
static bool say_group(struct chatops *c, struct actions_follow *f, const cJSON *first, int64_t now)
{
	const char *group = chatops_str_at(first, "group");
	size_t pending = 0, ready = 0;
	double oldest = 0;
	for (const cJSON *w = f->waits->child; w; w = w->next) {
		const char *g = chatops_str_at(w, "group");
		if (!g || strcmp(g, group) != 0)
			continue;
		const cJSON *at = cJSON_GetObjectItemCaseSensitive(w, "ready_at");
		if (!chatops_str_at(w, "line")) {
			pending++;
		} else if (cJSON_IsNumber(at)) {
			oldest = ready++ == 0 || at->valuedouble < oldest ? at->valuedouble : oldest;
		}
	}
	if (!ready || (pending && oldest + (double)FOLLOW_GROUP_WAIT_MS > (double)now))
		return false;
	struct strbuf text = STRBUF_INIT;
	strbuf_printf(&text, "The next report%s of the recheck of this incident's items (asked for by %s):",
		      ready == 1 ? "" : "s", chatops_str_at(first, "user") ?: "?");
	char key[400];
	notice_key(first, key, sizeof key); /* a group's waits share their event_id: the group */
	char *room = xstrdup(chatops_str_at(first, "room") ?: "");
	char *root = xstrdup(chatops_str_at(first, "root") ?: "");
	char *group_id = xstrdup(group);
	for (cJSON *w = f->waits->child, *next; w; w = next) {
		next = w->next;
		const char *g = chatops_str_at(w, "group");
		if (!g || strcmp(g, group_id) != 0 || !chatops_str_at(w, "line"))
			continue;
		strbuf_printf(&text, "\n%s", chatops_str_at(w, "line"));
		cJSON_Delete(cJSON_DetachItemViaPointer(f->waits, w));
	}
	if (pending)
		strbuf_printf(&text, "\n%zu more to come.", pending);
	actions_post_notice(c, room, root, root, key, strbuf_str(&text));
	log_kv(ZLOG_INFO, "an incident recheck's next reports are linked in its thread", "root", root, NULL);
	strbuf_free(&text);
	free(room);
	free(root);
	free(group_id);
	return true;
}

void chatops_actions_report_done(struct chatops *c, const struct zuul_event *ev)
{
	if (!c || !c->cfg->actions.enabled)
		return;
	struct actions_follow *f = follow_of(c);
	char *txn = f->posted_txn, *room = f->posted_room;
	f->posted_txn = f->posted_room = NULL;
	/* The item's start (and enqueue) report says only that it runs: its result is next. */
	if (!cJSON_GetArraySize(f->waits) || !ev->action || strcmp(ev->action, "start") == 0 ||
	    strcmp(ev->action, "enqueue") == 0) {
		free(txn);
		free(room);
		return;
	}
	cJSON *holder = cJSON_CreateObject();
	chatops_marker_add_item(holder, ev);
	char *key = actions_item_key(cJSON_GetObjectItemCaseSensitive(holder, "item"));
	bool changed = false;
	for (cJSON *w = f->waits->child, *next; w; w = next) {
		next = w->next;
		const char *wkey = chatops_str_at(w, "key");
		if (!wkey || strcmp(wkey, key) != 0 || cJSON_GetObjectItemCaseSensitive(w, "action"))
			continue;
		cJSON_AddStringToObject(w, "action", ev->action);
		changed = true;
		if (txn) {
			/* linked once it is delivered (actions_follow_tick) */
			cJSON_AddStringToObject(w, "txn", txn);
			cJSON_AddStringToObject(w, "txn_room", room);
		} else if (arrived(c, w, build_url(ev), false)) {
			cJSON_Delete(cJSON_DetachItemViaPointer(f->waits, w));
		}
	}
	if (changed)
		save(c, f);
	free(key);
	cJSON_Delete(holder);
	free(txn);
	free(room);
}

/* "https://matrix.to/#/ROOM/EVENT", both percent-encoded. Caller frees. */
static char *matrix_to(const char *room_id, const char *event_id)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "https://matrix.to/#/");
	zuul_admin_put_encoded(&sb, room_id, false);
	strbuf_putc(&sb, '/');
	zuul_admin_put_encoded(&sb, event_id, false);
	return strbuf_detach(&sb);
}

static const char *room_id_of(struct chatops *c, const char *room)
{
	for (size_t i = 0; room && i < c->n_rooms; i++)
		if (strcmp(c->rooms[i].room, room) == 0)
			return c->rooms[i].room_id;
	return NULL;
}

void actions_follow_tick(struct chatops *c)
{
	struct actions_follow *f = *actions_follow_slot(c);
	if (!c->cfg->actions.enabled || (f && f->waits && !cJSON_GetArraySize(f->waits)))
		return;
	f = follow_of(c);
	int64_t now = clock_wall_ms();
	bool changed = false;
	for (cJSON *w = f->waits->child, *next; w; w = next) {
		next = w->next;
		const char *txn = chatops_str_at(w, "txn");
		char *event_id = txn ? store_sent_event_id(c->store, txn) : NULL;
		const char *room_id = room_id_of(c, chatops_str_at(w, "txn_room"));
		const cJSON *until = cJSON_GetObjectItemCaseSensitive(w, "until");
		if (event_id && room_id) {
			char *link = matrix_to(room_id, event_id);
			cJSON_DeleteItemFromObjectCaseSensitive(w, "txn"); /* linked: no longer waiting for it */
			if (arrived(c, w, link, true))
				cJSON_Delete(cJSON_DetachItemViaPointer(f->waits, w));
			free(link);
			changed = true;
		} else if (!chatops_str_at(w, "line") && (!cJSON_IsNumber(until) || until->valuedouble < (double)now)) {
			log_kv(ZLOG_INFO, "a recheck's next report did not come within a day; no longer waiting for it", "root",
			       chatops_str_at(w, "root"), "event_id", chatops_str_at(w, "event_id"), NULL);
			cJSON_Delete(cJSON_DetachItemViaPointer(f->waits, w));
			changed = true;
		}
		free(event_id);
	}
	/* An incident's groups: said once complete, or once their oldest line waited enough. */
	for (const cJSON *w = f->waits->child; w;) {
		if (chatops_str_at(w, "group") && chatops_str_at(w, "line") && say_group(c, f, w, now)) {
			changed = true;
			w = f->waits->child; /* the group's waits are gone: look again from the start */
		} else {
			w = w->next;
		}
	}
	if (changed)
		save(c, f);
}
