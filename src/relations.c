/* relations: edits, thread replies and mentions as the Matrix spec shapes them
 * (client-server API: event replacements, threading, user mentions). */
#include "relations.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static const char *str_item(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* @localpart:server with the characters the spec allows in historical ids too, so a pill
 * can never carry markup: no quotes, angle brackets, spaces or controls. */
static bool user_id_is_safe(const char *id)
{
	if (!id || id[0] != '@' || !strchr(id, ':') || strlen(id) > 255)
		return false;
	for (const unsigned char *p = (const unsigned char *)id + 1; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || strchr("\"'<>&\\`", *p))
			return false;
	return true;
}

static bool list_has(const cJSON *array, const char *s)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, array)
	if (cJSON_IsString(it) && strcmp(it->valuestring, s) == 0)
		return true;
	return false;
}

static bool in_null_list(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* Whether content's m.mentions names anyone (a user, or the room). */
static bool mentions_anyone(const cJSON *content)
{
	const cJSON *mentions = cJSON_GetObjectItemCaseSensitive(content, "m.mentions");
	return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(mentions, "user_ids")) > 0 ||
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mentions, "room"));
}

void relations_settle_msgtype(cJSON *content)
{
	/* Synapse's (and the spec's) .m.rule.suppress_notices comes before
	 * .m.rule.is_user_mention: a notice never pings, whatever it mentions. */
	const char *msgtype = mentions_anyone(content) ? "m.text" : "m.notice";
	if (cJSON_GetObjectItemCaseSensitive(content, "msgtype"))
		cJSON_ReplaceItemInObjectCaseSensitive(content, "msgtype", cJSON_CreateString(msgtype));
	else
		cJSON_AddStringToObject(content, "msgtype", msgtype);
}

size_t relations_content_bytes(const cJSON *content)
{
	char *json = cJSON_PrintUnformatted(content);
	size_t n = json ? strlen(json) : SIZE_MAX;
	cJSON_free(json);
	return n;
}

/* The length of s cut to at most max bytes, at the end of its first line and never inside
 * a UTF-8 sequence. */
static size_t head_len(const char *s, size_t max)
{
	size_t n = strcspn(s, "\n");
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	return n;
}

static void set_string(cJSON *o, const char *key, const char *value)
{
	if (cJSON_GetObjectItemCaseSensitive(o, key))
		cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateString(value));
	else
		cJSON_AddStringToObject(o, key, value);
}

/* The fallback of an edit too large to carry its content twice: one plain line, the new
 * content's first, for the few clients that do not show edits. */
static void edit_short_fallback(cJSON *edit)
{
	const char *body = str_item(cJSON_GetObjectItemCaseSensitive(edit, "m.new_content"), "body");
	body = body ? body : "";
	size_t n = head_len(body, 200);
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "* edited: ");
	strbuf_append(&sb, body, n);
	if (body[n])
		strbuf_puts(&sb, " \u2026");
	set_string(edit, "body", strbuf_str(&sb));
	cJSON_DeleteItemFromObjectCaseSensitive(edit, "format");
	cJSON_DeleteItemFromObjectCaseSensitive(edit, "formatted_body");
	strbuf_free(&sb);
}

/* The last resort when the new content alone is too large (a long list of claimers on a
 * report at its size cap): it becomes plain text, cut, rather than an event the homeserver
 * refuses and a dead letter. A raw byte cut takes at least as many bytes out of the JSON. */
static void edit_cut_new_content(cJSON *edit)
{
	cJSON *nc = cJSON_GetObjectItemCaseSensitive(edit, "m.new_content");
	cJSON_DeleteItemFromObjectCaseSensitive(nc, "format");
	cJSON_DeleteItemFromObjectCaseSensitive(nc, "formatted_body");
	static const char mark[] = "\n\u2026 (cut: too large for one Matrix event)";
	size_t size = relations_content_bytes(edit);
	const char *body = str_item(nc, "body");
	if (!body || size <= RELATIONS_MAX_CONTENT_BYTES)
		return;
	size_t over = size - RELATIONS_MAX_CONTENT_BYTES + sizeof mark;
	size_t len = strlen(body), keep = len > over ? len - over : 0;
	while (keep > 0 && ((unsigned char)body[keep] & 0xC0) == 0x80)
		keep--;
	struct strbuf sb = STRBUF_INIT;
	strbuf_append(&sb, body, keep);
	strbuf_puts(&sb, mark);
	set_string(nc, "body", strbuf_str(&sb));
	strbuf_free(&sb);
}

/* Keeps an edit under RELATIONS_MAX_CONTENT_BYTES: it carries its content twice (the new
 * content and the "* " fallback), so a message over half the limit could be posted but
 * not edited. */
static void edit_fit(cJSON *edit)
{
	if (relations_content_bytes(edit) > RELATIONS_MAX_CONTENT_BYTES)
		edit_short_fallback(edit);
	if (relations_content_bytes(edit) > RELATIONS_MAX_CONTENT_BYTES)
		edit_cut_new_content(edit);
}

cJSON *relations_edit_new(const cJSON *new_content, const char *target_event_id, const char *const *already_mentioned)
{
	cJSON *edit = cJSON_CreateObject();
	cJSON_AddStringToObject(edit, "msgtype", "m.notice"); /* settled below, by the edit's own mentions */
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "* %s", str_item(new_content, "body") ? str_item(new_content, "body") : "");
	cJSON_AddStringToObject(edit, "body", strbuf_str(&sb));
	const char *formatted = str_item(new_content, "formatted_body");
	if (formatted) {
		strbuf_reset(&sb);
		strbuf_printf(&sb, "* %s", formatted);
		cJSON_AddStringToObject(edit, "format", "org.matrix.custom.html");
		cJSON_AddStringToObject(edit, "formatted_body", strbuf_str(&sb));
	}
	strbuf_free(&sb);

	/* Only users the edit newly mentions are pinged by it (spec: mentions in replacements).
	 * Synapse evaluates the edit's own content: .m.rule.is_user_mention comes before
	 * .m.rule.suppress_edits, so such an edit does ping, if it is not a notice. */
	cJSON *mentions = cJSON_AddObjectToObject(edit, "m.mentions");
	const cJSON *all = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(new_content, "m.mentions"),
							  "user_ids");
	const cJSON *it;
	cJSON_ArrayForEach(it, all)
	if (cJSON_IsString(it) && !in_null_list(already_mentioned, it->valuestring)) {
		cJSON *fresh = cJSON_GetObjectItemCaseSensitive(mentions, "user_ids");
		if (!fresh)
			fresh = cJSON_AddArrayToObject(mentions, "user_ids");
		cJSON_AddItemToArray(fresh, cJSON_CreateString(it->valuestring));
	}
	relations_settle_msgtype(edit);

	/* m.new_content is the whole replacement, without any relation of its own. */
	cJSON *copy = cJSON_Duplicate(new_content, 1);
	cJSON_DeleteItemFromObjectCaseSensitive(copy, "m.relates_to");
	if (!cJSON_GetObjectItemCaseSensitive(copy, "m.mentions"))
		cJSON_AddItemToObject(copy, "m.mentions", cJSON_CreateObject());
	cJSON_AddItemToObject(edit, "m.new_content", copy);

	cJSON *rel = cJSON_AddObjectToObject(edit, "m.relates_to");
	cJSON_AddStringToObject(rel, "rel_type", "m.replace");
	if (target_event_id)
		cJSON_AddStringToObject(rel, "event_id", target_event_id);
	edit_fit(edit);
	return edit;
}

void relations_make_thread_reply(cJSON *content, const char *root_event_id, const char *latest_event_id)
{
	cJSON_DeleteItemFromObjectCaseSensitive(content, "m.relates_to");
	cJSON *rel = cJSON_AddObjectToObject(content, "m.relates_to");
	cJSON_AddStringToObject(rel, "rel_type", "m.thread");
	if (root_event_id)
		cJSON_AddStringToObject(rel, "event_id", root_event_id);
	/* The reply fallback is for clients without threads; it is not a real reply. */
	cJSON_AddBoolToObject(rel, "is_falling_back", 1);
	cJSON *reply = cJSON_AddObjectToObject(rel, "m.in_reply_to");
	const char *to = latest_event_id ? latest_event_id : root_event_id;
	if (to)
		cJSON_AddStringToObject(reply, "event_id", to);
}

void relations_set_target(cJSON *content, const char *event_id)
{
	cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	if (!cJSON_IsObject(rel) || !event_id)
		return;
	if (!cJSON_GetObjectItemCaseSensitive(rel, "event_id"))
		cJSON_AddStringToObject(rel, "event_id", event_id);
	cJSON *reply = cJSON_GetObjectItemCaseSensitive(rel, "m.in_reply_to");
	if (cJSON_IsObject(reply) && !cJSON_GetObjectItemCaseSensitive(reply, "event_id"))
		cJSON_AddStringToObject(reply, "event_id", event_id);
}

/* Puts text in front of the string item key (creating it when missing). */
static void prepend(cJSON *content, const char *key, const char *text)
{
	const char *old = str_item(content, key);
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, text);
	strbuf_puts(&sb, old ? old : "");
	if (cJSON_GetObjectItemCaseSensitive(content, key))
		cJSON_ReplaceItemInObjectCaseSensitive(content, key, cJSON_CreateString(strbuf_str(&sb)));
	else
		cJSON_AddStringToObject(content, key, strbuf_str(&sb));
	strbuf_free(&sb);
}

/* A plain content's body as HTML (escaped, line breaks as <br>), so that pills put in front of
 * it do not leave HTML clients, which show only formatted_body, with the names alone. */
static void html_from_body(cJSON *content)
{
	const char *body = str_item(content, "body");
	if (str_item(content, "formatted_body") || !body)
		return;
	struct strbuf html = STRBUF_INIT;
	for (const char *line = body;;) {
		size_t len = strcspn(line, "\n");
		char *one = xstrndup(line, len);
		strbuf_puts_html(&html, one);
		free(one);
		if (!line[len])
			break;
		strbuf_puts(&html, "<br>");
		line += len + 1;
	}
	set_string(content, "formatted_body", strbuf_str(&html));
	strbuf_free(&html);
}

void relations_add_mentions(cJSON *content, const char *const *user_ids, size_t n)
{
	cJSON *mentions = cJSON_GetObjectItemCaseSensitive(content, "m.mentions");
	if (!cJSON_IsObject(mentions)) {
		cJSON_DeleteItemFromObjectCaseSensitive(content, "m.mentions");
		mentions = cJSON_AddObjectToObject(content, "m.mentions");
	}
	cJSON *ids = cJSON_GetObjectItemCaseSensitive(mentions, "user_ids");
	if (!cJSON_IsArray(ids)) {
		cJSON_DeleteItemFromObjectCaseSensitive(mentions, "user_ids");
		ids = cJSON_AddArrayToObject(mentions, "user_ids");
	}
	struct strbuf html = STRBUF_INIT, text = STRBUF_INIT;
	for (size_t i = 0; i < n; i++) {
		const char *id = user_ids[i];
		if (!user_id_is_safe(id) || list_has(ids, id))
			continue;
		cJSON_AddItemToArray(ids, cJSON_CreateString(id));
		/* Safe ids contain nothing HTML-special, so they go into the pill as they are. */
		strbuf_printf(&html, "%s<a href=\"https://matrix.to/#/%s\">%s</a>", html.len ? " " : "", id, id);
		strbuf_printf(&text, "%s%s", text.len ? " " : "", id);
	}
	if (text.len) {
		html_from_body(content);
		strbuf_puts(&html, "<br>");
		strbuf_puts(&text, "\n");
		prepend(content, "formatted_body", strbuf_str(&html));
		prepend(content, "body", strbuf_str(&text));
		if (!cJSON_GetObjectItemCaseSensitive(content, "format"))
			cJSON_AddStringToObject(content, "format", "org.matrix.custom.html");
	}
	relations_settle_msgtype(content);
	strbuf_free(&html);
	strbuf_free(&text);
}

const char **relations_mentioned_new(const cJSON *content)
{
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(content, "m.mentions"),
							  "user_ids");
	const char **out = xcalloc((size_t)cJSON_GetArraySize(ids) + 1, sizeof *out);
	size_t n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, ids)
	if (cJSON_IsString(it))
		out[n++] = it->valuestring;
	return out;
}

void relations_point_at_txn(cJSON *content, const char *txn_id)
{
	cJSON_DeleteItemFromObjectCaseSensitive(content, RELATIONS_TXN_KEY);
	cJSON_AddStringToObject(content, RELATIONS_TXN_KEY, txn_id);
}

const char *relations_pending_txn(const cJSON *content)
{
	return str_item(content, RELATIONS_TXN_KEY);
}

int relations_resolve(cJSON *content, const char *event_id)
{
	cJSON_DeleteItemFromObjectCaseSensitive(content, RELATIONS_TXN_KEY);
	if (event_id) {
		relations_set_target(content, event_id);
		return 0;
	}
	const char *rel_type = str_item(cJSON_GetObjectItemCaseSensitive(content, "m.relates_to"), "rel_type");
	if (rel_type && strcmp(rel_type, "m.replace") == 0)
		return -1;
	cJSON_DeleteItemFromObjectCaseSensitive(content, "m.relates_to");
	return 0;
}
