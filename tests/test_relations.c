/* Tests of relations: the exact shapes of edits, thread replies and mentions, since
 * clients ignore relations that are even slightly malformed. */
#include "relations.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "test.h"

static cJSON *message(const char *body, const char *html)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "msgtype", "m.notice");
	cJSON_AddStringToObject(c, "body", body);
	cJSON_AddStringToObject(c, "format", "org.matrix.custom.html");
	cJSON_AddStringToObject(c, "formatted_body", html);
	return c;
}

static const char *s(const cJSON *o, const char *path)
{
	/* a dotted path of object keys, where a key may itself contain dots after "m." */
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	const cJSON *cur = o;
	char *save = NULL;
	for (char *k = strtok_r(buf, "/", &save); k && cur; k = strtok_r(NULL, "/", &save))
		cur = cJSON_GetObjectItemCaseSensitive(cur, k);
	return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static char *print(const cJSON *o)
{
	return cJSON_PrintUnformatted(o);
}

static void test_edit_has_fallback_new_content_and_replace_relation(void)
{
	cJSON *fresh = message("claimed by @a:hs", "<b>claimed</b> by @a:hs");
	cJSON *edit = relations_edit_new(fresh, "$root", NULL);
	CHECK_STR(s(edit, "msgtype"), "m.notice");
	CHECK_STR(s(edit, "body"), "* claimed by @a:hs");
	CHECK_STR(s(edit, "formatted_body"), "* <b>claimed</b> by @a:hs");
	CHECK_STR(s(edit, "m.new_content/body"), "claimed by @a:hs");
	CHECK_STR(s(edit, "m.new_content/formatted_body"), "<b>claimed</b> by @a:hs");
	CHECK_STR(s(edit, "m.relates_to/rel_type"), "m.replace");
	CHECK_STR(s(edit, "m.relates_to/event_id"), "$root");
	cJSON_Delete(fresh);
	cJSON_Delete(edit);
}

static void test_edit_pings_only_newly_mentioned_users(void)
{
	cJSON *fresh = message("x", "x");
	const char *users[] = {"@oncall:hs", "@claimer:hs"};
	relations_add_mentions(fresh, users, 2);
	const char *before[] = {"@oncall:hs", NULL};
	cJSON *edit = relations_edit_new(fresh, "$root", before);
	char *txt = print(cJSON_GetObjectItemCaseSensitive(edit, "m.mentions"));
	CHECK_STR(txt, "{\"user_ids\":[\"@claimer:hs\"]}");
	cJSON_free(txt);
	txt = print(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(edit, "m.new_content"), "m.mentions"));
	CHECK_STR(txt, "{\"user_ids\":[\"@oncall:hs\",\"@claimer:hs\"]}");
	cJSON_free(txt);
	/* It pings the claimer: a notice would not (.m.rule.suppress_notices comes first). */
	CHECK_STR(s(edit, "msgtype"), "m.text");
	CHECK_STR(s(edit, "m.new_content/msgtype"), "m.text");
	cJSON_Delete(fresh);
	cJSON_Delete(edit);
}

static void test_edit_that_pings_nobody_is_a_notice_with_empty_mentions(void)
{
	cJSON *fresh = message("x", "x");
	const char *users[] = {"@oncall:hs"};
	relations_add_mentions(fresh, users, 1);
	const char **already = relations_mentioned_new(fresh);
	CHECK(already && already[0] && strcmp(already[0], "@oncall:hs") == 0 && !already[1]);
	cJSON *edit = relations_edit_new(fresh, "$root", already);
	free(already);
	char *txt = print(cJSON_GetObjectItemCaseSensitive(edit, "m.mentions"));
	CHECK_STR(txt, "{}");
	cJSON_free(txt);
	CHECK_STR(s(edit, "msgtype"), "m.notice");
	/* The new content keeps the message's mentions as a whole, and its own msgtype. */
	CHECK_STR(s(edit, "m.new_content/msgtype"), "m.text");
	txt = print(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(edit, "m.new_content"), "m.mentions"));
	CHECK_STR(txt, "{\"user_ids\":[\"@oncall:hs\"]}");
	cJSON_free(txt);
	cJSON_Delete(edit);
	/* Without any mentions the new content gets an empty m.mentions all the same. */
	cJSON *plain = message("y", "y");
	edit = relations_edit_new(plain, "$root", NULL);
	txt = print(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(edit, "m.new_content"), "m.mentions"));
	CHECK_STR(txt, "{}");
	cJSON_free(txt);
	CHECK_STR(s(edit, "msgtype"), "m.notice");
	cJSON_Delete(plain);
	cJSON_Delete(edit);
	cJSON_Delete(fresh);
}

/* An escalation is a plain notice until it mentions someone: its words must reach the HTML
 * too, escaped, or HTML clients show the names alone. */
static void test_mentions_on_a_plain_notice_keep_its_words_in_the_html(void)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "msgtype", "m.notice");
	cJSON_AddStringToObject(c, "body", "Still unclaimed <b>& \"x\"</b>\nReact to claim it.");
	const char *users[] = {"@a:hs"};
	relations_add_mentions(c, users, 1);
	CHECK_STR(s(c, "format"), "org.matrix.custom.html");
	CHECK_STR(s(c, "formatted_body"), "<a href=\"https://matrix.to/#/@a:hs\">@a:hs</a><br>"
					  "Still unclaimed &lt;b&gt;&amp; &quot;x&quot;&lt;/b&gt;<br>React to claim it.");
	CHECK_STR(s(c, "body"), "@a:hs\nStill unclaimed <b>& \"x\"</b>\nReact to claim it.");
	cJSON_Delete(c);
}

static void test_msgtype_follows_whether_anyone_is_mentioned(void)
{
	cJSON *c = message("x", "x");
	relations_add_mentions(c, NULL, 0);
	CHECK_STR(s(c, "msgtype"), "m.notice");
	const char *bad[] = {"not-a-user"};
	relations_add_mentions(c, bad, 1);
	CHECK_STR(s(c, "msgtype"), "m.notice");
	const char *users[] = {"@a:hs"};
	relations_add_mentions(c, users, 1);
	CHECK_STR(s(c, "msgtype"), "m.text");
	cJSON_Delete(c);
	cJSON *room = message("x", "x");
	cJSON *mentions = cJSON_AddObjectToObject(room, "m.mentions");
	cJSON_AddTrueToObject(mentions, "room");
	relations_settle_msgtype(room);
	CHECK_STR(s(room, "msgtype"), "m.text");
	cJSON_ReplaceItemInObject(mentions, "room", cJSON_CreateFalse());
	relations_settle_msgtype(room);
	CHECK_STR(s(room, "msgtype"), "m.notice");
	cJSON_DeleteItemFromObject(room, "msgtype");
	relations_settle_msgtype(room);
	CHECK_STR(s(room, "msgtype"), "m.notice");
	cJSON_Delete(room);
}

static void test_edit_of_a_thread_reply_drops_the_relation_from_new_content(void)
{
	cJSON *fresh = message("x", "x");
	relations_make_thread_reply(fresh, "$root", NULL);
	cJSON *edit = relations_edit_new(fresh, "$reply", NULL);
	CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(edit, "m.new_content"),
					       "m.relates_to") == NULL);
	CHECK_STR(s(edit, "m.relates_to/event_id"), "$reply");
	cJSON_Delete(fresh);
	cJSON_Delete(edit);
}

static void test_thread_reply_falls_back_to_a_reply_to_the_latest_event(void)
{
	cJSON *c = message("again", "again");
	relations_make_thread_reply(c, "$root", "$latest");
	char *txt = print(cJSON_GetObjectItemCaseSensitive(c, "m.relates_to"));
	CHECK_STR(txt, "{\"rel_type\":\"m.thread\",\"event_id\":\"$root\",\"is_falling_back\":true,"
		       "\"m.in_reply_to\":{\"event_id\":\"$latest\"}}");
	cJSON_free(txt);
	relations_make_thread_reply(c, "$root", NULL); /* replacing, not stacking */
	CHECK_STR(s(c, "m.relates_to/m.in_reply_to/event_id"), "$root");
	cJSON_Delete(c);
}

static void test_target_filled_in_later_for_thread_and_edit(void)
{
	cJSON *c = message("again", "again");
	relations_make_thread_reply(c, NULL, NULL);
	CHECK(s(c, "m.relates_to/event_id") == NULL);
	relations_set_target(c, "$root");
	CHECK_STR(s(c, "m.relates_to/event_id"), "$root");
	CHECK_STR(s(c, "m.relates_to/m.in_reply_to/event_id"), "$root");
	cJSON *edit = relations_edit_new(c, NULL, NULL);
	relations_set_target(edit, "$e");
	CHECK_STR(s(edit, "m.relates_to/event_id"), "$e");
	relations_set_target(edit, "$other"); /* a known target is never overwritten */
	CHECK_STR(s(edit, "m.relates_to/event_id"), "$e");
	cJSON_Delete(c);
	cJSON_Delete(edit);
}

static void test_mentions_add_pills_ids_and_skip_bad_or_repeated_ids(void)
{
	cJSON *c = message("Build failed.", "<p>Build failed.</p>");
	const char *users[] = {"@alice:example.org", "@bob\"><script>:x", "not-a-user", "@alice:example.org",
			       "@carol:example.org"};
	relations_add_mentions(c, users, 5);
	CHECK_STR(s(c, "formatted_body"),
		  "<a href=\"https://matrix.to/#/@alice:example.org\">@alice:example.org</a> "
		  "<a href=\"https://matrix.to/#/@carol:example.org\">@carol:example.org</a><br><p>Build failed.</p>");
	CHECK_STR(s(c, "body"), "@alice:example.org @carol:example.org\nBuild failed.");
	char *txt = print(cJSON_GetObjectItemCaseSensitive(c, "m.mentions"));
	CHECK_STR(txt, "{\"user_ids\":[\"@alice:example.org\",\"@carol:example.org\"]}");
	cJSON_free(txt);
	const char *again[] = {"@alice:example.org"};
	relations_add_mentions(c, again, 1); /* nothing new: nothing prepended */
	CHECK_STR(s(c, "body"), "@alice:example.org @carol:example.org\nBuild failed.");
	cJSON_Delete(c);
}

/* A message of about `bytes` (text and HTML together): a title line, then one line per job. */
static cJSON *big_message(size_t bytes)
{
	struct strbuf text = STRBUF_INIT, html = STRBUF_INIT;
	strbuf_puts(&text, "\u274c Build failed.");
	strbuf_puts(&html, "<p>\u274c <b>Build failed.</b></p><ul>");
	for (int i = 0; text.len + html.len < bytes; i++) {
		strbuf_printf(&text, "\n- job-%04d-with-a-long-name-\u00e9\u00e9: FAILURE", i);
		strbuf_printf(&html, "<li><b>job-%04d-with-a-long-name-\u00e9\u00e9</b>: FAILURE</li>", i);
	}
	strbuf_puts(&html, "</ul>");
	cJSON *c = message(strbuf_str(&text), strbuf_str(&html));
	cJSON_AddItemToObject(c, "m.mentions", cJSON_CreateObject());
	strbuf_free(&text);
	strbuf_free(&html);
	return c;
}

static void test_small_edit_keeps_the_whole_fallback(void)
{
	cJSON *c = big_message(20000);
	cJSON *edit = relations_edit_new(c, "$root", NULL);
	CHECK(strncmp(s(edit, "body"), "* \u274c Build failed.\n- job-0000", 20) == 0);
	CHECK(strlen(s(edit, "body")) == strlen(s(c, "body")) + 2);
	CHECK(s(edit, "formatted_body") != NULL);
	cJSON_Delete(c);
	cJSON_Delete(edit);
}

static void test_edit_of_a_large_message_has_a_one_line_fallback_and_fits(void)
{
	/* 40 KB: fine as a message, twice that as an edit: Synapse would answer 413. */
	cJSON *c = big_message(40000);
	CHECK(relations_content_bytes(c) < RELATIONS_MAX_CONTENT_BYTES);
	cJSON *edit = relations_edit_new(c, "$root", NULL);
	size_t n = relations_content_bytes(edit);
	if (n > RELATIONS_MAX_CONTENT_BYTES)
		printf("# expected an edit of at most %d bytes, got %zu\n", RELATIONS_MAX_CONTENT_BYTES, n);
	CHECK(n <= RELATIONS_MAX_CONTENT_BYTES);
	CHECK_STR(s(edit, "body"), "* edited: \u274c Build failed. \u2026");
	CHECK(s(edit, "formatted_body") == NULL && s(edit, "format") == NULL);
	/* The new content, what clients show, is whole. */
	CHECK_STR(s(edit, "m.new_content/body"), s(c, "body"));
	CHECK_STR(s(edit, "m.new_content/formatted_body"), s(c, "formatted_body"));
	CHECK_STR(s(edit, "m.relates_to/rel_type"), "m.replace");
	cJSON_Delete(c);
	cJSON_Delete(edit);
}

static void test_edit_whose_new_content_alone_is_too_large_is_cut_as_plain_text(void)
{
	cJSON *c = big_message(4 * RELATIONS_MAX_CONTENT_BYTES); /* its text alone is too large */
	cJSON *edit = relations_edit_new(c, "$root", NULL);
	size_t n = relations_content_bytes(edit);
	if (n > RELATIONS_MAX_CONTENT_BYTES)
		printf("# expected an edit of at most %d bytes, got %zu\n", RELATIONS_MAX_CONTENT_BYTES, n);
	CHECK(n <= RELATIONS_MAX_CONTENT_BYTES && n > RELATIONS_MAX_CONTENT_BYTES - 4096); /* escapes: a bit more goes */
	CHECK(s(edit, "m.new_content/formatted_body") == NULL);
	const char *body = s(edit, "m.new_content/body");
	CHECK(body && strncmp(body, s(c, "body"), 1000) == 0);
	CHECK_CONTAINS(body, "(cut: too large for one Matrix event)");
	/* Still valid UTF-8 where it was cut: the JSON round-trips. */
	char *json = cJSON_PrintUnformatted(edit);
	cJSON *back = cJSON_Parse(json);
	CHECK(back != NULL);
	cJSON_Delete(back);
	cJSON_free(json);
	cJSON_Delete(c);
	cJSON_Delete(edit);
}

int main(void)
{
	RUN(test_edit_has_fallback_new_content_and_replace_relation);
	RUN(test_edit_pings_only_newly_mentioned_users);
	RUN(test_edit_that_pings_nobody_is_a_notice_with_empty_mentions);
	RUN(test_msgtype_follows_whether_anyone_is_mentioned);
	RUN(test_mentions_on_a_plain_notice_keep_its_words_in_the_html);
	RUN(test_edit_of_a_thread_reply_drops_the_relation_from_new_content);
	RUN(test_thread_reply_falls_back_to_a_reply_to_the_latest_event);
	RUN(test_target_filled_in_later_for_thread_and_edit);
	RUN(test_mentions_add_pills_ids_and_skip_bad_or_repeated_ids);
	RUN(test_small_edit_keeps_the_whole_fallback);
	RUN(test_edit_of_a_large_message_has_a_one_line_fallback_and_fits);
	RUN(test_edit_whose_new_content_alone_is_too_large_is_cut_as_plain_text);
	return test_done();
}
