/* chatops_actions_interrupted: a call to Zuul the daemon's stop cut short (issue #17). Zuul
 * may or may not have done it, so it is never sent again: it is recorded as "interrupted",
 * and the next start says in its thread that its outcome is unknown. */
#include "chatops_actions_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_actions.h"

/* [{"event_id", "room", "root", "reply_to", "user", "what"}]: the calls the last run left
 * unanswered, emptied once told. */
#define KV_INTERRUPTED "actions.interrupted"

static void add_opt(cJSON *o, const char *key, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, key, v);
}

void actions_record_interrupted(struct chatops *c, const struct call *k)
{
	/* A call whose turn never came did not reach Zuul: that much is known. */
	bool sent = !k->timer;
	store_action_set_state(c->store, k->event_id, sent ? "interrupted" : "not-sent");
	log_kv(ZLOG_WARN,
	       sent ? "zuul action interrupted by the stop; its outcome is unknown and it is not sent again"
		    : "zuul action not sent: the bridge stopped first; it is not sent later",
	       "action", k->kind, "user", k->user, "what", k->what, "event_id", k->event_id, NULL);
	cJSON *list = chatops_kv_json(c, KV_INTERRUPTED, cJSON_Array);
	cJSON *e = cJSON_CreateObject();
	add_opt(e, "event_id", k->event_id);
	add_opt(e, "room", k->room);
	add_opt(e, "root", k->root);
	add_opt(e, "reply_to", k->reply_to);
	add_opt(e, "user", k->user);
	add_opt(e, "what", k->what);
	cJSON_AddBoolToObject(e, "sent", sent);
	cJSON_AddItemToArray(list, e);
	chatops_kv_put_json(c, KV_INTERRUPTED, list);
	cJSON_Delete(list);
}

/* One notice per acting event: an incident's recheck lists its unanswered items together. */
static void tell_one(struct chatops *c, const cJSON *list, const cJSON *first)
{
	const char *event_id = chatops_str_at(first, "event_id");
	struct strbuf text = STRBUF_INIT;
	size_t n = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, list)
	{
		const char *id = chatops_str_at(e, "event_id");
		if (!id || strcmp(id, event_id) != 0)
			continue;
		strbuf_printf(&text, "\n- %s", chatops_str_at(e, "what") ?: "?");
		n++;
	}
	struct strbuf all = STRBUF_INIT;
	if (n == 1 && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(first, "sent")))
		strbuf_printf(&all, "%s asked for the %s: not done, the bridge stopped before sending it to Zuul. "
				    "Ask again if it is still wanted.",
			      chatops_str_at(first, "user") ?: "?", chatops_str_at(first, "what") ?: "?");
	else if (n == 1)
		strbuf_printf(&all, "%s asked for the %s: the bridge stopped before Zuul answered, so its outcome is "
				    "unknown: check Zuul's status page. It is not sent again.",
			      chatops_str_at(first, "user") ?: "?", chatops_str_at(first, "what") ?: "?");
	else
		strbuf_printf(&all, "%s asked for %zu actions, and the bridge stopped before Zuul answered them: "
				    "their outcome is unknown: check Zuul's status page. They are not sent again.%s",
			      chatops_str_at(first, "user") ?: "?", n, strbuf_str(&text));
	char key[300];
	snprintf(key, sizeof key, "%s|interrupted", event_id);
	actions_post_notice(c, chatops_str_at(first, "room"), chatops_str_at(first, "root"),
			    chatops_str_at(first, "reply_to"), key, strbuf_str(&all));
	strbuf_free(&all);
	strbuf_free(&text);
}

void actions_tell_interrupted(struct chatops *c)
{
	cJSON *list = chatops_kv_json(c, KV_INTERRUPTED, cJSON_Array);
	if (!cJSON_GetArraySize(list)) {
		cJSON_Delete(list);
		return;
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, list)
	{
		const char *id = chatops_str_at(e, "event_id");
		bool told = false; /* an earlier entry of the same event said it */
		for (const cJSON *p = list->child; p != e && !told; p = p->next)
			told = chatops_str_at(p, "event_id") && id && strcmp(chatops_str_at(p, "event_id"), id) == 0;
		if (id && chatops_str_at(e, "room") && !told)
			tell_one(c, list, e);
	}
	log_kv(ZLOG_INFO, "told the threads of the zuul actions the last run left unanswered", NULL);
	cJSON *empty = cJSON_CreateArray();
	chatops_kv_put_json(c, KV_INTERRUPTED, empty);
	cJSON_Delete(empty);
	cJSON_Delete(list);
}
