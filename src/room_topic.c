/* room_topic: composes the bridge's part of a route room's topic and places it after what
 * people wrote there; decides whether the bot's power level lets it set the topic. */
#include "room_topic.h"

#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "strbuf.h"

#define ONCALL_LEAD "On call: "
#define WORKFLOW_LEAD "Workflow: "
#define RECHECK_REACTION "\xf0\x9f\x94\x81" /* U+1F501 🔁 */
#define SEP " \xc2\xb7 "                     /* " · " */

/* "now @a:x until ..." -> "@a:x until ...": the topic is always about now. */
static void put_oncall(struct strbuf *sb, const struct rotation_config *rc, time_t now)
{
	char *d = rotation_describe(rc, now);
	const char *text = strncmp(d, "now ", 4) == 0 ? d + 4 : d;
	strbuf_printf(sb, ONCALL_LEAD "%s", text);
	free(d);
}

static void put_workflow(struct strbuf *sb, const struct room_topic_facts *f)
{
	struct strbuf parts = STRBUF_INIT;
	if (f->claim_reaction && f->resolve_reaction)
		strbuf_printf(&parts, "%s claim" SEP "%s resolve", f->claim_reaction, f->resolve_reaction);
	if (f->recheck)
		strbuf_printf(&parts, "%s" RECHECK_REACTION " recheck", parts.len ? SEP : "");
	if (f->command_prefix)
		strbuf_printf(&parts, "%s%s help", parts.len ? SEP : "", f->command_prefix);
	if (parts.len)
		strbuf_printf(sb, "%s" WORKFLOW_LEAD "%s", sb->len ? "\n" : "", strbuf_str(&parts));
	strbuf_free(&parts);
}

char *room_topic_compose(const struct room_topic_facts *f, time_t now)
{
	struct strbuf sb = STRBUF_INIT;
	if (f->rotation)
		put_oncall(&sb, f->rotation, now);
	put_workflow(&sb, f);
	if (f->note && *f->note)
		strbuf_printf(&sb, "%s%s", sb.len ? "\n" : "", f->note);
	return strbuf_detach(&sb);
}

const char *room_topic_text_of(const cJSON *content)
{
	const cJSON *block = cJSON_GetObjectItemCaseSensitive(content, "m.topic");
	const cJSON *texts = cJSON_GetObjectItemCaseSensitive(block, "m.text");
	const cJSON *t;
	cJSON_ArrayForEach(t, texts)
	{
		const cJSON *mime = cJSON_GetObjectItemCaseSensitive(t, "mimetype");
		const cJSON *body = cJSON_GetObjectItemCaseSensitive(t, "body");
		bool plain = !mime || (cJSON_IsString(mime) && strcmp(mime->valuestring, "text/plain") == 0);
		if (plain && cJSON_IsString(body))
			return body->valuestring;
	}
	const cJSON *topic = cJSON_GetObjectItemCaseSensitive(content, "topic");
	return cJSON_IsString(topic) ? topic->valuestring : NULL;
}

/* Whether the paragraph at p looks like a block the bridge wrote: its on-call line, or its
 * workflow line (which names a claim or the help command, unlike a person's "Workflow: see
 * the wiki"). For a topic whose last block the store forgot (a lost state_dir). */
static bool looks_like_ours(const char *p)
{
	if (strncmp(p, ONCALL_LEAD, strlen(ONCALL_LEAD)) == 0)
		return true;
	if (strncmp(p, WORKFLOW_LEAD, strlen(WORKFLOW_LEAD)) != 0)
		return false;
	size_t len = strcspn(p, "\n");
	char *line = xstrndup(p, len);
	bool ours = (strstr(line, " claim" SEP) || (len > 5 && strcmp(line + len - 5, " help") == 0));
	free(line);
	return ours;
}

/* The length of the people's part of current: what comes before the bridge's block and
 * the blank line in front of it; all of current when there is no block of ours. */
static size_t human_length(const char *current, const char *ours_last)
{
	size_t n = strlen(current);
	if (ours_last && *ours_last) {
		size_t o = strlen(ours_last);
		if (n == o && strcmp(current, ours_last) == 0)
			return 0;
		if (n >= o + 2 && strcmp(current + n - o, ours_last) == 0 && strncmp(current + n - o - 2, "\n\n", 2) == 0)
			return n - o - 2;
	}
	if (looks_like_ours(current))
		return 0;
	const char *last = NULL;
	for (const char *p = strstr(current, "\n\n"); p; p = strstr(p + 1, "\n\n"))
		if (looks_like_ours(p + 2))
			last = p;
	return last ? (size_t)(last - current) : n;
}

char *room_topic_merge(const char *current, const char *ours_last, const char *block)
{
	const char *cur = current ? current : "";
	size_t human = human_length(cur, ours_last);
	struct strbuf sb = STRBUF_INIT;
	strbuf_append(&sb, cur, human);
	if (human && *block)
		strbuf_puts(&sb, "\n\n");
	strbuf_puts(&sb, block);
	if (strcmp(strbuf_str(&sb), cur) == 0) {
		strbuf_free(&sb);
		return NULL;
	}
	return strbuf_detach(&sb);
}

cJSON *room_topic_content(const char *text)
{
	cJSON *content = cJSON_CreateObject();
	cJSON_AddStringToObject(content, "topic", text);
	cJSON *block = cJSON_AddObjectToObject(content, "m.topic");
	cJSON *texts = cJSON_AddArrayToObject(block, "m.text");
	cJSON *plain = cJSON_CreateObject();
	cJSON_AddStringToObject(plain, "mimetype", "text/plain");
	cJSON_AddStringToObject(plain, "body", text);
	cJSON_AddItemToArray(texts, plain);
	return content;
}

long long room_topic_required_level(const cJSON *power_levels)
{
	return commands_state_level(power_levels, "m.room.topic");
}

bool room_topic_may_set(const cJSON *power_levels, const cJSON *create_content, const char *creator,
			const char *user)
{
	if (!user)
		return false;
	if (commands_creator_outranks(create_content, creator, user))
		return true;
	return commands_user_level(power_levels, user, creator) >= room_topic_required_level(power_levels);
}
