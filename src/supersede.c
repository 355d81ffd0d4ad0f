/* supersede: drops an edit that a newer queued edit of the same message replaces, so a
 * rate-limited bridge spends its sends on facts, not on states nobody will see. */
#include "supersede.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "relations.h"
#include "strbuf.h"

static const char *str_item(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool pings_someone(const cJSON *content)
{
	const cJSON *mentions = cJSON_GetObjectItemCaseSensitive(content, "m.mentions");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mentions, "room")))
		return true;
	return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(mentions, "user_ids")) > 0;
}

/* The message a silent edit replaces, as an event id where one is known, else as the
 * pending transaction ("txn:" prefixed); NULL for anything else (caller frees). */
static char *silent_edit_target(const char *json, supersede_lookup_fn lookup, void *data)
{
	/* The cheap test first: most queued items are reports, not edits. */
	if (!json || !strstr(json, "\"m.replace\""))
		return NULL;
	cJSON *content = cJSON_Parse(json);
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	const char *rel_type = str_item(rel, "rel_type");
	char *target = NULL;
	if (rel_type && strcmp(rel_type, "m.replace") == 0 && !pings_someone(content)) {
		const char *event_id = str_item(rel, "event_id");
		const char *txn = relations_pending_txn(content);
		if (event_id) {
			target = xstrdup(event_id);
		} else if (txn) {
			target = lookup ? lookup(txn, data) : NULL;
			if (!target) {
				struct strbuf sb = STRBUF_INIT;
				strbuf_printf(&sb, "txn:%s", txn);
				target = strbuf_detach(&sb);
			}
		}
	}
	cJSON_Delete(content);
	return target;
}

bool supersede_is_stale(const char *head_json, supersede_later_fn later, size_t n, supersede_lookup_fn lookup,
			void *data)
{
	char *target = silent_edit_target(head_json, lookup, data);
	if (!target)
		return false;
	bool stale = false;
	for (size_t i = 0; i < n && !stale; i++) {
		char *other = silent_edit_target(later(i, data), lookup, data);
		stale = other && strcmp(other, target) == 0;
		free(other);
	}
	free(target);
	return stale;
}
