/* chatops_catchup: after an absence, failures that recovered meanwhile become one summary
 * per room (digest.c renders it); the heartbeat that tells an absence at start-up. */
#include "chatops_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "digest.h"
#include "log.h"
#include "relations.h"
#include "strbuf.h"

/* ---- catch-up after an absence -------------------------------------------------- */

static void catchup_reset(struct chatops *c)
{
	cJSON_Delete(c->catchup);
	c->catchup = cJSON_CreateObject();
	cJSON_AddNumberToObject(c->catchup, "away_since", 0);
	cJSON_AddItemToObject(c->catchup, "reports", cJSON_CreateArray());
	cJSON_AddItemToObject(c->catchup, "skip", cJSON_CreateObject());
	c->away_since_ms = 0;
}

void chatops_catchup_save(struct chatops *c)
{
	cJSON_ReplaceItemInObjectCaseSensitive(c->catchup, "away_since", cJSON_CreateNumber((double)c->away_since_ms));
	char *json = cJSON_PrintUnformatted(c->catchup);
	c->host.kv_set(KV_CATCHUP, json, c->host.data);
	cJSON_free(json);
}

void chatops_catchup_load(struct chatops *c)
{
	catchup_reset(c);
	char *json = c->host.kv_get(KV_CATCHUP, c->host.data);
	cJSON *saved = json ? cJSON_Parse(json) : NULL;
	free(json);
	const cJSON *since = cJSON_GetObjectItemCaseSensitive(saved, "away_since");
	if (cJSON_IsNumber(since) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(saved, "reports")) &&
	    cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(saved, "skip"))) {
		cJSON_Delete(c->catchup);
		c->catchup = saved;
		c->away_since_ms = (int64_t)since->valuedouble;
		return;
	}
	cJSON_Delete(saved);
}

void chatops_catchup_add_report(struct chatops *c, const char *room, const char *route, const char *action,
			       const char *thread_key, const char *what, int64_t at_ms)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "room", room);
	cJSON_AddStringToObject(r, "route", route);
	cJSON_AddStringToObject(r, "action", action);
	cJSON_AddStringToObject(r, "thread_key", thread_key);
	cJSON_AddStringToObject(r, "what", what);
	cJSON_AddNumberToObject(r, "at_ms", (double)at_ms);
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(c->catchup, "reports"), r);
}

int64_t chatops_away_since(const struct chatops *c)
{
	return c ? c->away_since_ms : 0;
}

void chatops_away_begin(struct chatops *c, int64_t since_ms)
{
	if (!c || c->away_since_ms || c->cfg->chatops.catch_up_after_s <= 0)
		return;
	c->away_since_ms = since_ms > 0 ? since_ms : 1;
	chatops_catchup_save(c);
	char since[32];
	snprintf(since, sizeof since, "%lld", (long long)since_ms);
	log_kv(ZLOG_INFO, "catching up after an absence: recovered failures will be summarised", "away_since_ms",
	       since, NULL);
}

/* The summary of one room's share of the reports. */
static void post_catchup_room(struct chatops *c, const char *room, const cJSON *reports, int64_t to_ms)
{
	size_t n = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, reports)
		n += strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "room")), room) == 0;
	struct digest_report *list = xcalloc(n ? n : 1, sizeof *list);
	char **keys = xcalloc(n ? n : 1, sizeof *keys);
	size_t k = 0;
	cJSON_ArrayForEach(r, reports)
	{
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "room")), room) != 0)
			continue;
		/* project|branch|pipeline|jobs: the parts the summary groups by */
		keys[k] = xstrdup(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "thread_key")));
		char *part[3] = {keys[k], "", ""};
		for (int i = 1; i < 3; i++) {
			char *bar = strchr(part[i - 1], '|');
			if (!bar)
				break;
			*bar = '\0';
			part[i] = bar + 1;
		}
		char *bar = strchr(part[2], '|');
		if (bar)
			*bar = '\0';
		list[k] = (struct digest_report){
			.route = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "route")),
			.action = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "action")),
			.project = part[0],
			.branch = part[1],
			.pipeline = part[2],
			.what = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "what")),
			.at_ms = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "at_ms")),
		};
		k++;
	}
	bool *summarise = xcalloc(n ? n : 1, sizeof *summarise);
	digest_catch_up_plan(list, k, summarise);
	cJSON *content = digest_catch_up_content_new(list, k, summarise, c->away_since_ms, to_ms);
	if (content) {
		char key[300];
		snprintf(key, sizeof key, "%lld|%s", (long long)c->away_since_ms, room);
		c->host.post(room, "catch-up", key, content, c->host.data);
		log_kv(ZLOG_INFO, "catch-up summary posted", "room", room, NULL);
		cJSON_Delete(content);
	}
	for (size_t i = 0; i < k; i++)
		free(keys[i]);
	free(keys);
	free(list);
	free(summarise);
}

void chatops_away_end(struct chatops *c)
{
	if (!c || !c->away_since_ms)
		return;
	int64_t now = clock_wall_ms();
	cJSON *reports = cJSON_GetObjectItemCaseSensitive(c->catchup, "reports");
	/* One summary per room, in the order the rooms first appear. */
	const cJSON *r;
	cJSON *done = cJSON_CreateObject();
	cJSON_ArrayForEach(r, reports)
	{
		const char *room = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "room"));
		if (!room || cJSON_GetObjectItemCaseSensitive(done, room))
			continue;
		cJSON_AddTrueToObject(done, room);
		post_catchup_room(c, room, reports, now);
	}
	cJSON_Delete(done);
	log_kv(ZLOG_INFO, "caught up", NULL);
	/* The skip set outlives the absence a little: replies to a summarised message may
	 * still wait in the outbox. */
	cJSON *skip = cJSON_DetachItemFromObjectCaseSensitive(c->catchup, "skip");
	catchup_reset(c);
	cJSON *entry = skip ? skip->child : NULL;
	while (entry) {
		cJSON *next = entry->next;
		if (cJSON_IsNumber(entry) && now - (int64_t)entry->valuedouble < CATCHUP_SKIP_KEEP_MS)
			cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(c->catchup, "skip"), entry->string,
						entry->valuedouble);
		entry = next;
	}
	cJSON_Delete(skip);
	chatops_catchup_save(c);
}

bool chatops_skip(struct chatops *c, const struct outbox_item *item)
{
	const cJSON *skip = c ? cJSON_GetObjectItemCaseSensitive(c->catchup, "skip") : NULL;
	if (!skip || !skip->child)
		return false;
	if (cJSON_GetObjectItemCaseSensitive(skip, item->txn_id))
		return true;
	if (!strstr(item->content_json, "\"" RELATIONS_TXN_KEY "\""))
		return false;
	cJSON *content = cJSON_Parse(item->content_json);
	const char *target = relations_pending_txn(content);
	bool covered = target && cJSON_GetObjectItemCaseSensitive(skip, target);
	cJSON_Delete(content);
	return covered;
}

/* Writes the heartbeat; at the first look, an old one starts a catch-up. */
void chatops_heartbeat(struct chatops *c)
{
	int64_t now = clock_wall_ms();
	if (c->alive_written_ms && now >= c->alive_written_ms && now - c->alive_written_ms < HEARTBEAT_MS)
		return;
	char text[32];
	snprintf(text, sizeof text, "%lld", (long long)now);
	c->host.kv_set(KV_ALIVE, text, c->host.data);
	c->alive_written_ms = now;
}

void chatops_heartbeat_first(struct chatops *c)
{
	char *last = c->host.kv_get(KV_ALIVE, c->host.data);
	int64_t then = last ? strtoll(last, NULL, 10) : 0;
	free(last);
	long long gap = c->cfg->chatops.catch_up_after_s;
	if (then > 0 && gap > 0 && clock_wall_ms() - then > gap * 1000)
		chatops_away_begin(c, then);
	chatops_heartbeat(c);
}
