/* Tests of room_topic: the composed text, how it sits beside a topic people wrote, the
 * m.room.topic content, and whether the bot's power level lets it set the topic. */
#include "room_topic.h"

#include <time.h>

#include "test.h"

static time_t utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
	return timegm(&tm);
}

static char *ab[] = {"@a:x.org", "@b:x.org"};

/* a, then b, a week each, handover Monday 09:00 Berlin time from Monday 2026-01-05. */
static struct rotation_config weekly(void)
{
	return (struct rotation_config){
		.members = ab,
		.n_members = 2,
		.shift_s = 7 * 86400,
		.handover_weekday = 1,
		.handover_minute = 9 * 60,
		.timezone = "Europe/Berlin",
		.start = {2026, 1, 5},
	};
}

#define EYES "\xf0\x9f\x91\x80"
#define CHECKMARK "\xe2\x9c\x85"
#define REPEAT "\xf0\x9f\x94\x81"
#define DOT " \xc2\xb7 "

static struct room_topic_facts all_parts(const struct rotation_config *rc)
{
	return (struct room_topic_facts){.rotation = rc,
					 .claim_reaction = EYES,
					 .resolve_reaction = CHECKMARK,
					 .recheck = true,
					 .command_prefix = "!zuul",
					 .note = "Runbook: https://wiki.example.org/ci"};
}

static void test_compose_names_the_on_call_and_the_workflow(void)
{
	struct rotation_config rc = weekly();
	struct room_topic_facts f = all_parts(&rc);
	char *t = room_topic_compose(&f, utc(2026, 1, 7, 12, 0));
	CHECK_STR(t, "On call: @a:x.org until Mon 12 Jan 09:00 CET, then @b:x.org\n"
		     "Workflow: " EYES " claim" DOT CHECKMARK " resolve" DOT REPEAT " recheck" DOT "!zuul help\n"
		     "Runbook: https://wiki.example.org/ci");
	free(t);
	/* After the handover the line names the next shift. */
	t = room_topic_compose(&f, utc(2026, 1, 12, 8, 0));
	CHECK_CONTAINS(t, "On call: @b:x.org until Mon 19 Jan 09:00 CET, then @a:x.org\n");
	free(t);
}

static void test_compose_leaves_out_what_is_not_configured(void)
{
	struct room_topic_facts f = {.claim_reaction = EYES, .resolve_reaction = CHECKMARK, .command_prefix = "/ci"};
	char *t = room_topic_compose(&f, utc(2026, 1, 7, 12, 0));
	CHECK_STR(t, "Workflow: " EYES " claim" DOT CHECKMARK " resolve" DOT "/ci help");
	free(t);
	f = (struct room_topic_facts){.command_prefix = "!zuul"};
	t = room_topic_compose(&f, 0);
	CHECK_STR(t, "Workflow: !zuul help");
	free(t);
	f = (struct room_topic_facts){0};
	t = room_topic_compose(&f, 0);
	CHECK_STR(t, "");
	free(t);
	f = (struct room_topic_facts){.note = "Ask in #infra"};
	t = room_topic_compose(&f, 0);
	CHECK_STR(t, "Ask in #infra");
	free(t);
}

static void test_merge_sets_the_block_in_a_room_without_a_topic(void)
{
	char *t = room_topic_merge(NULL, NULL, "Workflow: !zuul help");
	CHECK_STR(t, "Workflow: !zuul help");
	free(t);
	t = room_topic_merge("", "Workflow: !zuul help", "Workflow: !zuul help");
	CHECK_STR(t, "Workflow: !zuul help");
	free(t);
}

static void test_merge_answers_null_when_nothing_changes(void)
{
	CHECK(room_topic_merge("Workflow: !zuul help", "Workflow: !zuul help", "Workflow: !zuul help") == NULL);
	CHECK(room_topic_merge("Our CI room\n\nWorkflow: !zuul help", "Workflow: !zuul help", "Workflow: !zuul help") ==
	      NULL);
	/* A store that forgot the last block still knows the block by its shape. */
	CHECK(room_topic_merge("On call: @a:x until Mon, then @b:x", NULL, "On call: @a:x until Mon, then @b:x") == NULL);
}

static void test_merge_keeps_what_people_wrote_first(void)
{
	char *t = room_topic_merge("Nightly CI failures. Be kind.", NULL, "Workflow: !zuul help");
	CHECK_STR(t, "Nightly CI failures. Be kind.\n\nWorkflow: !zuul help");
	free(t);
	/* A handover replaces only the bridge's own block. */
	t = room_topic_merge("Be kind.\n\nOn call: @a:x until Mon\nWorkflow: !zuul help", "On call: @a:x until Mon\nWorkflow: !zuul help",
			     "On call: @b:x until Tue\nWorkflow: !zuul help");
	CHECK_STR(t, "Be kind.\n\nOn call: @b:x until Tue\nWorkflow: !zuul help");
	free(t);
	/* Someone replaced the whole topic: theirs stays, the block comes back after it. */
	t = room_topic_merge("Release week!", "On call: @a:x until Mon", "On call: @a:x until Mon");
	CHECK_STR(t, "Release week!\n\nOn call: @a:x until Mon");
	free(t);
	/* A person's own "Workflow:" line is theirs, not a block of the bridge's. */
	t = room_topic_merge("Workflow: see the wiki", NULL, "Workflow: !zuul help");
	CHECK_STR(t, "Workflow: see the wiki\n\nWorkflow: !zuul help");
	free(t);
	/* Without the last block, the last paragraph of the bridge's shape is replaced. */
	t = room_topic_merge("Be kind.\n\nWorkflow: " EYES " claim" DOT CHECKMARK " resolve", NULL,
			     "On call: @b:x\nWorkflow: " EYES " claim" DOT CHECKMARK " resolve");
	CHECK_STR(t, "Be kind.\n\nOn call: @b:x\nWorkflow: " EYES " claim" DOT CHECKMARK " resolve");
	free(t);
}

static void test_content_carries_the_plain_topic_and_the_topic_block(void)
{
	cJSON *c = room_topic_content("On call: @a:x\nWorkflow: !zuul help");
	char *json = cJSON_PrintUnformatted(c);
	CHECK_STR(json, "{\"topic\":\"On call: @a:x\\nWorkflow: !zuul help\",\"m.topic\":{\"m.text\":[{\"mimetype\":"
			"\"text/plain\",\"body\":\"On call: @a:x\\nWorkflow: !zuul help\"}]}}");
	CHECK_STR(room_topic_text_of(c), "On call: @a:x\nWorkflow: !zuul help");
	free(json);
	cJSON_Delete(c);
}

static void test_text_of_prefers_the_plain_representation(void)
{
	cJSON *c = cJSON_Parse("{\"topic\":\"old\",\"m.topic\":{\"m.text\":[{\"mimetype\":\"text/html\",\"body\":"
			       "\"<b>new</b>\"},{\"body\":\"new\"}]}}");
	CHECK_STR(room_topic_text_of(c), "new");
	cJSON_Delete(c);
	c = cJSON_Parse("{\"topic\":\"legacy\"}");
	CHECK_STR(room_topic_text_of(c), "legacy");
	cJSON_Delete(c);
	c = cJSON_Parse("{}");
	CHECK(room_topic_text_of(c) == NULL);
	cJSON_Delete(c);
}

static void test_required_level_follows_the_spec(void)
{
	cJSON *pl = cJSON_Parse("{\"state_default\":50,\"events\":{\"m.room.topic\":75}}");
	CHECK_INT(room_topic_required_level(pl), 75);
	cJSON_Delete(pl);
	pl = cJSON_Parse("{\"state_default\":\"20\",\"events\":{\"m.room.name\":50}}");
	CHECK_INT(room_topic_required_level(pl), 20);
	cJSON_Delete(pl);
	pl = cJSON_Parse("{\"users\":{}}");
	CHECK_INT(room_topic_required_level(pl), 50);
	cJSON_Delete(pl);
	CHECK_INT(room_topic_required_level(NULL), 0); /* no power levels event at all */
}

static void test_may_set_compares_the_bot_level(void)
{
	cJSON *pl = cJSON_Parse("{\"users\":{\"@alice:x\":100,\"@bot:x\":50},\"state_default\":50}");
	cJSON *create = cJSON_Parse("{\"room_version\":\"10\",\"creator\":\"@alice:x\"}");
	CHECK(room_topic_may_set(pl, create, "@alice:x", "@bot:x"));
	CHECK(!room_topic_may_set(pl, create, "@alice:x", "@carol:x"));
	cJSON_Delete(pl);
	/* Power too low: the bot at 0 where the topic needs 50. */
	pl = cJSON_Parse("{\"users\":{\"@alice:x\":100,\"@bot:x\":0},\"events\":{\"m.room.topic\":50}}");
	CHECK(!room_topic_may_set(pl, create, "@alice:x", "@bot:x"));
	cJSON_Delete(pl);
	/* A topic open to everyone. */
	pl = cJSON_Parse("{\"users\":{\"@alice:x\":100},\"events\":{\"m.room.topic\":0}}");
	CHECK(room_topic_may_set(pl, create, "@alice:x", "@bot:x"));
	cJSON_Delete(pl);
	cJSON_Delete(create);
	CHECK(!room_topic_may_set(NULL, NULL, NULL, NULL));
}

static void test_a_version_12_creator_may_set_it_without_being_in_users(void)
{
	cJSON *pl = cJSON_Parse("{\"users\":{\"@alice:x\":150},\"users_default\":0,\"state_default\":50,"
				"\"events\":{\"m.room.topic\":100}}");
	cJSON *create = cJSON_Parse("{\"room_version\":\"12\"}");
	CHECK(room_topic_may_set(pl, create, "@bot:x", "@bot:x"));
	CHECK(!room_topic_may_set(pl, create, "@bot:x", "@carol:x"));
	cJSON_Delete(create);
	/* An additional creator outranks the levels too... */
	create = cJSON_Parse("{\"room_version\":\"12\",\"additional_creators\":[\"@bot:x\"]}");
	CHECK(room_topic_may_set(pl, create, "@alice:x", "@bot:x"));
	cJSON_Delete(create);
	/* ...but in version 11 the creator counts by level only. */
	create = cJSON_Parse("{\"room_version\":\"11\"}");
	CHECK(!room_topic_may_set(pl, create, "@bot:x", "@bot:x"));
	cJSON_Delete(create);
	cJSON_Delete(pl);
}

int main(void)
{
	RUN(test_compose_names_the_on_call_and_the_workflow);
	RUN(test_compose_leaves_out_what_is_not_configured);
	RUN(test_merge_sets_the_block_in_a_room_without_a_topic);
	RUN(test_merge_answers_null_when_nothing_changes);
	RUN(test_merge_keeps_what_people_wrote_first);
	RUN(test_content_carries_the_plain_topic_and_the_topic_block);
	RUN(test_text_of_prefers_the_plain_representation);
	RUN(test_required_level_follows_the_spec);
	RUN(test_may_set_compares_the_bot_level);
	RUN(test_a_version_12_creator_may_set_it_without_being_in_users);
	return test_done();
}
