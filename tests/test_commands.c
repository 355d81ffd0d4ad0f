/* Tests of commands: what counts as a command, every verb and its arguments, the error
 * replies, hostile bodies, the help text, power levels and reaction matching. */
#include "commands.h"

#include "strbuf.h"
#include "test.h"

#include <stdbool.h>

#define NOW ((time_t)1767600000) /* 2026-01-05 08:00:00 UTC */

/* Parses body with prefix "!zuul" at NOW; the caller clears *c. */
static enum commands_verb parse(const char *body, struct commands_parsed *c)
{
	return commands_parse(body, "!zuul", NOW, c);
}

/* The verb body parses to, with everything it owned freed. */
static enum commands_verb verb_of(const char *body)
{
	struct commands_parsed c;
	enum commands_verb v = parse(body, &c);
	commands_parsed_clear(&c);
	return v;
}

#define CHECK_VERB(body, want)                                                                                         \
	do {                                                                                                           \
		enum commands_verb got_ = verb_of(body);                                                               \
		if (got_ != (want)) {                                                                                  \
			test_current_failed = 1;                                                                       \
			printf("# %s:%d: \"%s\": expected %s, got %s\n", __FILE__, __LINE__, body,                     \
			       commands_verb_name(want), commands_verb_name(got_));                                    \
		}                                                                                                      \
	} while (0)

/* Parses body, expects INVALID and an error containing want; returns nothing. */
static void check_error(const char *body, const char *want)
{
	struct commands_parsed c;
	enum commands_verb v = parse(body, &c);
	if (v != COMMANDS_INVALID) {
		test_current_failed = 1;
		printf("# \"%.60s\": expected invalid, got %s\n", body, commands_verb_name(v));
	}
	CHECK(c.project == NULL && c.job == NULL);
	CHECK_CONTAINS(c.error, want);
	commands_parsed_clear(&c);
}

/* ---- what is a command ---- */

static void test_messages_without_the_prefix_are_ignored(void)
{
	CHECK_VERB("hello", COMMANDS_NONE);
	CHECK_VERB("", COMMANDS_NONE);
	CHECK_VERB("please run !zuul status", COMMANDS_NONE);
	CHECK_VERB(" !zuul status", COMMANDS_NONE);
	/* The prefix is a whole word, and case-sensitive. */
	CHECK_VERB("!zuulbot status", COMMANDS_NONE);
	CHECK_VERB("!ZUUL status", COMMANDS_NONE);
	CHECK_VERB("!zuu", COMMANDS_NONE);
	struct commands_parsed c;
	CHECK(commands_parse(NULL, "!zuul", NOW, &c) == COMMANDS_NONE);
	CHECK(c.error == NULL);
	CHECK(commands_parse("!zuul status", NULL, NOW, &c) == COMMANDS_NONE);
	CHECK(commands_parse("!zuul status", "", NOW, &c) == COMMANDS_NONE);
	commands_parsed_clear(&c);
}

static void test_prefix_alone_or_with_whitespace_is_help(void)
{
	CHECK_VERB("!zuul", COMMANDS_HELP);
	CHECK_VERB("!zuul   ", COMMANDS_HELP);
	CHECK_VERB("!zuul\n", COMMANDS_HELP);
	CHECK_VERB("!zuul help", COMMANDS_HELP);
	CHECK_VERB("!zuul help mute", COMMANDS_HELP);
}

static void test_every_verb_parses(void)
{
	CHECK_VERB("!zuul oncall", COMMANDS_ONCALL);
	CHECK_VERB("!zuul claims", COMMANDS_CLAIMS);
	CHECK_VERB("!zuul status", COMMANDS_STATUS);
	CHECK_VERB("!zuul mute org/repo 1h", COMMANDS_MUTE);
	CHECK_VERB("!zuul unmute org/repo", COMMANDS_UNMUTE);
	CHECK_VERB("!zuul owners org/repo", COMMANDS_OWNERS);
	CHECK_VERB("!zuul workflow", COMMANDS_WORKFLOW);
	CHECK_VERB("!zuul Workflow\n", COMMANDS_WORKFLOW);
	/* Any ASCII whitespace separates words; verbs ignore case (phones capitalise). */
	CHECK_VERB("!zuul\tstatus", COMMANDS_STATUS);
	CHECK_VERB("!zuul\r\n  Status \n", COMMANDS_STATUS);
	CHECK_VERB("!zuul ONCALL", COMMANDS_ONCALL);
}

static void test_custom_prefixes(void)
{
	struct commands_parsed c;
	CHECK(commands_parse("!ci claims", "!ci", NOW, &c) == COMMANDS_CLAIMS);
	commands_parsed_clear(&c);
	CHECK(commands_parse("!zuul claims", "!ci", NOW, &c) == COMMANDS_NONE);
	commands_parsed_clear(&c);
	CHECK(commands_parse("\xf0\x9f\xa4\x96 oncall", "\xf0\x9f\xa4\x96", NOW, &c) == COMMANDS_ONCALL);
	commands_parsed_clear(&c);
	/* Error replies name the configured prefix. */
	CHECK(commands_parse("zb: mute", "zb:", NOW, &c) == COMMANDS_INVALID);
	CHECK_CONTAINS(c.error, "usage: zb: mute PROJECT [JOB] DURATION");
	commands_parsed_clear(&c);
}

static void test_reply_fallback_is_skipped(void)
{
	CHECK_VERB("> <@alice:example.org> the build failed\n> again\n\n!zuul claims", COMMANDS_CLAIMS);
	CHECK_VERB("> <@alice:example.org> x\r\n\r\n!zuul status", COMMANDS_STATUS);
	/* A quoted command is not a command. */
	CHECK_VERB("> <@alice:example.org> !zuul status", COMMANDS_NONE);
	CHECK_VERB("> <@alice:example.org> !zuul status\n\nthanks", COMMANDS_NONE);
	CHECK_VERB("> !zuul status\nno blank line", COMMANDS_NONE);
}

/* ---- arguments ---- */

static void test_mute_a_project(void)
{
	struct commands_parsed c;
	CHECK(parse("!zuul mute SovereignCloudStack/standards 2h", &c) == COMMANDS_MUTE);
	CHECK_STR(c.project, "SovereignCloudStack/standards");
	CHECK(c.job == NULL);
	CHECK_INT(c.duration_s, 7200);
	CHECK_INT(c.until, NOW + 7200);
	CHECK(c.error == NULL);
	commands_parsed_clear(&c);
	CHECK(c.project == NULL && c.verb == COMMANDS_NONE);
	/* The project is never split at '/': three path segments are still one project. */
	CHECK(parse("!zuul mute SovereignCloudStack/standards/tox-py311 1h30m", &c) == COMMANDS_MUTE);
	CHECK_STR(c.project, "SovereignCloudStack/standards/tox-py311");
	CHECK(c.job == NULL);
	CHECK_INT(c.duration_s, 5400);
	commands_parsed_clear(&c);
}

static void test_mute_one_job(void)
{
	struct commands_parsed c;
	CHECK(parse("!zuul  mute   opendev.org/org/repo   tox-py3.11_x+y  1d ", &c) == COMMANDS_MUTE);
	CHECK_STR(c.project, "opendev.org/org/repo");
	CHECK_STR(c.job, "tox-py3.11_x+y");
	CHECK_INT(c.duration_s, 86400);
	CHECK_INT(c.until, NOW + 86400);
	commands_parsed_clear(&c);
	/* 30 days is the longest mute, plain seconds work too. */
	CHECK(parse("!zuul mute a b 30d", &c) == COMMANDS_MUTE);
	CHECK_INT(c.duration_s, 30 * 86400);
	commands_parsed_clear(&c);
	CHECK(parse("!zuul mute a 90", &c) == COMMANDS_MUTE);
	CHECK_INT(c.duration_s, 90);
	commands_parsed_clear(&c);
}

static void test_mute_mistakes_get_helpful_errors(void)
{
	check_error("!zuul mute", "usage: !zuul mute PROJECT [JOB] DURATION (e.g. !zuul mute "
				  "SovereignCloudStack/standards 2h");
	check_error("!zuul mute org/repo", "usage: !zuul mute PROJECT [JOB] DURATION");
	check_error("!zuul mute a b c 1h", "usage: !zuul mute PROJECT [JOB] DURATION");
	check_error("!zuul mute org/repo tox", "\"tox\" is not a duration (expected e.g. 30m, 2h, 1d, 1w; "
					       "the duration comes last");
	check_error("!zuul mute org/repo 2h tox", "\"tox\" is not a duration");
	check_error("!zuul mute org/repo 1h30", "\"1h30\" is not a duration");
	check_error("!zuul mute org/repo 0", "a mute lasts at least 1s");
	check_error("!zuul mute org/repo 31d", "a mute lasts at most 30d");
	check_error("!zuul mute org/repo 99999999999999999999w", "is not a duration");
	check_error("!zuul mute <b>x</b> 1h", "PROJECT is not a Zuul name");
	check_error("!zuul mute org/repo @room 1h", "JOB is not a Zuul name");
}

static void test_unmute(void)
{
	struct commands_parsed c;
	CHECK(parse("!zuul unmute org/repo", &c) == COMMANDS_UNMUTE);
	CHECK_STR(c.project, "org/repo");
	CHECK(c.job == NULL);
	CHECK_INT(c.duration_s, 0);
	commands_parsed_clear(&c);
	CHECK(parse("!zuul unmute org/repo tox-py311", &c) == COMMANDS_UNMUTE);
	CHECK_STR(c.project, "org/repo");
	CHECK_STR(c.job, "tox-py311");
	commands_parsed_clear(&c);
	check_error("!zuul unmute", "usage: !zuul unmute PROJECT [JOB]");
	check_error("!zuul unmute a b c", "usage: !zuul unmute PROJECT [JOB]");
	check_error("!zuul unmute org/repo job\"x", "JOB is not a Zuul name");
}

static void test_owners_of_a_project_or_job(void)
{
	struct commands_parsed c;
	CHECK(parse("!zuul owners SovereignCloudStack/standards", &c) == COMMANDS_OWNERS);
	CHECK_STR(c.project, "SovereignCloudStack/standards");
	CHECK(c.job == NULL);
	CHECK_INT(c.duration_s, 0);
	CHECK(c.error == NULL);
	commands_parsed_clear(&c);
	CHECK(parse("!zuul OWNERS  org/repo   tox-py3.11 ", &c) == COMMANDS_OWNERS);
	CHECK_STR(c.project, "org/repo");
	CHECK_STR(c.job, "tox-py3.11");
	commands_parsed_clear(&c);
	/* As for mute, a project is never split at '/': the job is always its own word. */
	CHECK(parse("!zuul owners org/repo/tox-py3", &c) == COMMANDS_OWNERS);
	CHECK_STR(c.project, "org/repo/tox-py3");
	CHECK(c.job == NULL);
	commands_parsed_clear(&c);
	check_error("!zuul owners", "usage: !zuul owners PROJECT [JOB] (e.g. !zuul owners "
				    "SovereignCloudStack/standards, or !zuul owners SovereignCloudStack/standards "
				    "tox-py311)");
	check_error("!zuul owners org/repo tox-py3 extra", "usage: !zuul owners PROJECT [JOB]");
	check_error("!zuul owners @room", "PROJECT is not a Zuul name");
	check_error("!zuul owners org/repo <b>job</b>", "JOB is not a Zuul name");
	struct commands_parsed z;
	CHECK(commands_parse("zb: owners", "zb:", NOW, &z) == COMMANDS_INVALID);
	CHECK_CONTAINS(z.error, "usage: zb: owners PROJECT [JOB] (e.g. zb: owners ");
	commands_parsed_clear(&z);
}

static void test_workflow_takes_no_arguments(void)
{
	struct commands_parsed c;
	CHECK(parse("!zuul workflow", &c) == COMMANDS_WORKFLOW);
	CHECK(c.project == NULL && c.job == NULL && c.error == NULL);
	commands_parsed_clear(&c);
	check_error("!zuul workflow please", "!zuul workflow takes no arguments");
	check_error("!zuul workflow org/repo tox", "!zuul workflow takes no arguments");
}

static void test_commands_without_arguments_refuse_them(void)
{
	check_error("!zuul status now", "!zuul status takes no arguments");
	check_error("!zuul oncall @bob:example.org", "!zuul oncall takes no arguments");
	check_error("!zuul claims all", "!zuul claims takes no arguments");
}

static void test_unknown_verbs(void)
{
	check_error("!zuul stauts", "unknown command \"stauts\"; the commands are help, oncall, claims, "
				    "mute, unmute, status, owners, workflow, flaky, recheck, dequeue, autohold and "
				    "autoholds (!zuul help explains them)");
	check_error("!zuul owner org/repo", "unknown command \"owner\"");
	/* A word that could ping the room or carry markup is not repeated. */
	struct commands_parsed c;
	const char *hostile[] = {"!zuul @room", "!zuul <a href=\"https://evil\">x</a>", "!zuul \xc3\xa9t\xc3\xa9",
				 "!zuul aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		CHECK(parse(hostile[i], &c) == COMMANDS_INVALID);
		CHECK_CONTAINS(c.error, "unknown command; the commands are");
		CHECK_NOT_CONTAINS(c.error, "@room");
		CHECK_NOT_CONTAINS(c.error, "<");
		commands_parsed_clear(&c);
	}
}

/* ---- hostile input ---- */

static void test_long_bodies(void)
{
	size_t n = 1 << 20;
	char *big = xmalloc(n + 1);
	memset(big, 'a', n);
	big[n] = '\0';
	/* Not a command: ignored without a reply, however long. */
	CHECK_VERB(big, COMMANDS_NONE);
	memcpy(big, "!zuul mute ", 11);
	check_error(big, "that command is too long (at most 2000 characters)");
	/* Exactly the limit after the prefix is still parsed. */
	char *edge = xmalloc(6 + COMMANDS_BODY_MAX + 1);
	memcpy(edge, "!zuul", 5);
	memset(edge + 5, ' ', COMMANDS_BODY_MAX);
	memcpy(edge + 5 + COMMANDS_BODY_MAX - 6, "status", 6);
	edge[5 + COMMANDS_BODY_MAX] = '\0';
	CHECK_VERB(edge, COMMANDS_STATUS);
	free(edge);
	free(big);
	/* Names: 200 bytes are fine, 201 are not. */
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "!zuul unmute ");
	for (int i = 0; i < COMMANDS_NAME_MAX; i++)
		strbuf_putc(&sb, 'p');
	CHECK_VERB(strbuf_str(&sb), COMMANDS_UNMUTE);
	strbuf_putc(&sb, 'p');
	check_error(strbuf_str(&sb), "PROJECT is not a Zuul name (expected letters, digits and . _ - / + : ~, "
				     "at most 200 characters)");
	strbuf_free(&sb);
	check_error("!zuul a b c d e f g h i", "too many words; try !zuul help");
	CHECK_VERB("!zuul help a b c d e f g", COMMANDS_HELP);
}

static void test_control_characters_and_bad_utf8(void)
{
	check_error("!zuul status\x01", "control characters");
	check_error("!zuul mute org/repo\x1b[31m 1h", "control characters");
	check_error("!zuul st\x7f"
		    "atus",
		    "control characters");
	check_error("!zuul status \xff", "not valid UTF-8");
	check_error("!zuul status \xc0\xaf", "not valid UTF-8");     /* overlong '/' */
	check_error("!zuul status \xed\xa0\x80", "not valid UTF-8"); /* surrogate */
	check_error("!zuul status \xe2\x9c", "not valid UTF-8");     /* cut short */
	/* Non-ASCII text that is valid is only an unknown word. */
	check_error("!zuul stat\xc3\xbcs", "unknown command;");
	/* Control characters outside a command do not matter. */
	CHECK_VERB("hello\x01", COMMANDS_NONE);
}

/* ---- help, power levels, reactions ---- */

/* Issue #16: the flakiest jobs, of every project or of one. */
static void test_flaky_takes_an_optional_project(void)
{
	struct commands_parsed c;
	CHECK_INT(parse("!zuul flaky", &c), COMMANDS_FLAKY);
	CHECK(c.project == NULL);
	commands_parsed_clear(&c);
	CHECK_INT(parse("!zuul FLAKY SovereignCloudStack/standards\n", &c), COMMANDS_FLAKY);
	CHECK_STR(c.project, "SovereignCloudStack/standards");
	CHECK(c.job == NULL);
	commands_parsed_clear(&c);
	check_error("!zuul flaky org/a org/b", "usage: !zuul flaky [PROJECT] (e.g. !zuul flaky, or !zuul flaky "
					       "SovereignCloudStack/standards)");
	check_error("!zuul flaky @room", "PROJECT is not a Zuul name");
	check_error("!zuul flaky <b>x</b>", "PROJECT is not a Zuul name");
	CHECK_STR(commands_verb_name(COMMANDS_FLAKY), "flaky");
}

static void test_help_lists_every_command_on_one_line(void)
{
	char *h = commands_help("!zuul", 50, true);
	CHECK_CONTAINS(h, "Commands (for members with power level 50 or more):\n");
	const char *lines[] = {"\n!zuul help: ",
			       "\n!zuul oncall: ",
			       "\n!zuul claims: ",
			       "\n!zuul mute PROJECT [JOB] DURATION: ",
			       "\n!zuul unmute PROJECT [JOB]: ",
			       "\n!zuul status: ",
			       "\n!zuul owners PROJECT [JOB]: ",
			       "\n!zuul workflow: ",
			       "\n!zuul flaky [PROJECT]: ",
			       "\n!zuul recheck (or react \U0001F501 to the failure): ",
			       "\n!zuul dequeue: ",
			       "\n!zuul autohold JOB [COUNT] REASON: ",
			       "\n!zuul autoholds: the tenant's holds; !zuul autohold delete ID removes one\n"};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		CHECK_CONTAINS(h, lines[i]);
	int nl = 0;
	for (const char *p = h; *p; p++)
		nl += *p == '\n';
	CHECK_INT(nl, 15);
	free(h);
	h = commands_help("!ci", 0, false);
	CHECK_NOT_CONTAINS(h, "recheck");
	CHECK(strncmp(h, "Commands:\n!ci help: ", 20) == 0);
	CHECK_NOT_CONTAINS(h, "!zuul");
	free(h);
}

static long long level_in(const char *json, const char *user, const char *creator)
{
	cJSON *pl = json ? cJSON_Parse(json) : NULL;
	if (json && !pl) {
		printf("# bad test JSON: %s\n", json);
		test_current_failed = 1;
	}
	long long l = commands_user_level(pl, user, creator);
	cJSON_Delete(pl);
	return l;
}

static bool outranks(const char *create_json, const char *creator, const char *user)
{
	cJSON *create = cJSON_Parse(create_json);
	bool yes = commands_creator_outranks(create, creator, user);
	cJSON_Delete(create);
	return yes;
}

/* Synapse creates version 12 rooms by default: their creators are not in power_levels. */
static void test_creators_of_version_12_rooms_outrank_every_level(void)
{
	const char *v12 = "{\"room_version\": \"12\", \"additional_creators\": [\"@co:x\", 7]}";
	CHECK(outranks(v12, "@alice:x", "@alice:x"));
	CHECK(outranks(v12, "@alice:x", "@co:x"));
	CHECK(!outranks(v12, "@alice:x", "@bob:x"));
	CHECK(outranks("{\"room_version\": \"13\"}", "@alice:x", "@alice:x"));
	CHECK(outranks("{\"room_version\": \"org.matrix.hydra.11\"}", "@alice:x", "@alice:x"));
	/* Older versions (and no version: "1") give the creator nothing beyond power_levels. */
	CHECK(!outranks("{\"room_version\": \"11\"}", "@alice:x", "@alice:x"));
	CHECK(!outranks("{\"room_version\": \"10\", \"additional_creators\": [\"@co:x\"]}", "@alice:x", "@co:x"));
	CHECK(!outranks("{}", "@alice:x", "@alice:x"));
	CHECK(!outranks("{\"room_version\": \"12x\"}", "@alice:x", "@alice:x"));
	CHECK(!outranks("{\"room_version\": 12}", "@alice:x", "@alice:x"));
	CHECK(!outranks("null", "@alice:x", "@alice:x"));
	CHECK(!outranks("{\"room_version\": \"12\"}", "@alice:x", NULL));
}

static void test_power_levels_follow_the_spec(void)
{
	const char *pl = "{\"users\": {\"@admin:x\": 100, \"@mod:x\": 50, \"@muted:x\": -1}, \"users_default\": 10}";
	CHECK_INT(level_in(pl, "@admin:x", NULL), 100);
	CHECK_INT(level_in(pl, "@mod:x", NULL), 50);
	CHECK_INT(level_in(pl, "@muted:x", NULL), -1);
	CHECK_INT(level_in(pl, "@other:x", NULL), 10);
	/* users_default defaults to 0; users may be absent. */
	CHECK_INT(level_in("{\"users\": {\"@mod:x\": 50}}", "@other:x", NULL), 0);
	CHECK_INT(level_in("{\"users_default\": 20}", "@other:x", NULL), 20);
	CHECK_INT(level_in("{}", "@other:x", NULL), 0);
	/* No power-levels event: the creator has 100, everybody else 0. */
	CHECK_INT(level_in(NULL, "@creator:x", "@creator:x"), 100);
	CHECK_INT(level_in(NULL, "@other:x", "@creator:x"), 0);
	CHECK_INT(level_in(NULL, "@other:x", NULL), 0);
	CHECK_INT(level_in("[1, 2]", "@creator:x", "@creator:x"), 100);
	/* With the event, being the creator alone gives nothing. */
	CHECK_INT(level_in("{}", "@creator:x", "@creator:x"), 0);
	/* Old room versions: integers as strings. */
	CHECK_INT(level_in("{\"users\": {\"@mod:x\": \"50\"}, \"users_default\": \"-5\"}", "@mod:x", NULL), 50);
	CHECK_INT(level_in("{\"users\": {\"@mod:x\": \"50\"}, \"users_default\": \"-5\"}", "@o:x", NULL), -5);
	/* Unusable values fall back, not through. */
	CHECK_INT(level_in("{\"users\": {\"@a:x\": true, \"@b:x\": \"5O\", \"@c:x\": 1e300}, \"users_default\": 3}",
			   "@a:x", NULL),
		  3);
	CHECK_INT(level_in("{\"users\": {\"@b:x\": \"5O\"}, \"users_default\": 3}", "@b:x", NULL), 3);
	CHECK_INT(level_in("{\"users\": {\"@c:x\": 1e300}, \"users_default\": 3}", "@c:x", NULL), 3);
	CHECK_INT(level_in("{\"users\": [\"@a:x\"], \"users_default\": null}", "@a:x", NULL), 0);
	/* User ids are compared exactly. */
	CHECK_INT(level_in(pl, "@ADMIN:x", NULL), 10);
	CHECK_INT(level_in(pl, NULL, NULL), 10);
}

static long long redact_level_in(const char *json)
{
	cJSON *pl = json ? cJSON_Parse(json) : NULL;
	long long l = commands_redact_level(pl);
	cJSON_Delete(pl);
	return l;
}

/* A redaction takes a claim away only as the homeserver applies it: by the reaction's own
 * sender, or by a member at the room's redact level. */
static void test_redactions_stand_for_the_sender_or_a_moderator(void)
{
	CHECK_INT(redact_level_in("{\"redact\": 75}"), 75);
	CHECK_INT(redact_level_in("{\"redact\": \"25\"}"), 25);
	CHECK_INT(redact_level_in("{}"), 50);
	CHECK_INT(redact_level_in("{\"redact\": true}"), 50);
	CHECK_INT(redact_level_in(NULL), 50);
	CHECK(commands_redaction_stands("@alice:x", 0, "@alice:x", 50));
	CHECK(!commands_redaction_stands("@carol:x", 0, "@alice:x", 50));
	CHECK(!commands_redaction_stands("@carol:x", 49, "@alice:x", 50));
	CHECK(commands_redaction_stands("@mod:x", 50, "@alice:x", 50));
	CHECK(!commands_redaction_stands("@mod:x", 50, "@alice:x", 75));
	CHECK(!commands_redaction_stands("@ALICE:x", 0, "@alice:x", 50));
	CHECK(!commands_redaction_stands(NULL, 100, "@alice:x", 50));
	CHECK(!commands_redaction_stands("@alice:x", 100, NULL, 50));
}

static void test_allowed_compares_levels(void)
{
	CHECK(commands_allowed(50, 50));
	CHECK(commands_allowed(100, 50));
	CHECK(!commands_allowed(49, 50));
	CHECK(commands_allowed(0, 0));
	CHECK(!commands_allowed(-1, 0));
	char *r = commands_refusal("!zuul", 0, 50);
	CHECK_STR(r, "Sorry, !zuul commands need power level 50 in this room; you have 0.");
	free(r);
}

static void test_reactions_ignore_the_variation_selector(void)
{
	const char *check = "\xe2\x9c\x85", *check_vs = "\xe2\x9c\x85\xef\xb8\x8f";
	CHECK(commands_reaction_matches(check, check));
	CHECK(commands_reaction_matches(check_vs, check));
	CHECK(commands_reaction_matches(check, check_vs));
	CHECK(!commands_reaction_matches("\xf0\x9f\x91\x80", check));
	CHECK(!commands_reaction_matches("\xe2\x9c\x85\xe2\x9c\x85", check));
	CHECK(!commands_reaction_matches("", check));
	CHECK(!commands_reaction_matches(NULL, check));
	CHECK(!commands_reaction_matches(check, NULL));
	CHECK(commands_reaction_matches("+1", "+1"));
}

static void test_verb_names_and_clearing(void)
{
	CHECK_STR(commands_verb_name(COMMANDS_NONE), "none");
	CHECK_STR(commands_verb_name(COMMANDS_INVALID), "invalid");
	CHECK_STR(commands_verb_name(COMMANDS_MUTE), "mute");
	CHECK_STR(commands_verb_name(COMMANDS_STATUS), "status");
	CHECK_STR(commands_verb_name(COMMANDS_OWNERS), "owners");
	CHECK_STR(commands_verb_name(COMMANDS_WORKFLOW), "workflow");
	commands_parsed_clear(NULL);
	struct commands_parsed c;
	parse("!zuul mute a b 1h", &c);
	commands_parsed_clear(&c);
	commands_parsed_clear(&c);
	CHECK(c.project == NULL && c.job == NULL && c.error == NULL);
}

/* ---- actions on Zuul ---- */

static void test_recheck_dequeue_and_autoholds_take_no_arguments(void)
{
	CHECK_VERB("!zuul recheck", COMMANDS_RECHECK);
	CHECK_VERB("!zuul RECHECK  ", COMMANDS_RECHECK);
	CHECK_VERB("!zuul dequeue", COMMANDS_DEQUEUE);
	CHECK_VERB("!zuul autoholds", COMMANDS_AUTOHOLDS);
	check_error("!zuul recheck please", "!zuul recheck takes no arguments");
	check_error("!zuul dequeue now", "!zuul dequeue takes no arguments");
	/* in a reply, behind the quote of the failure */
	CHECK_VERB("> <@zuul-bot:hs> Failure of org/repo\n\n!zuul recheck", COMMANDS_RECHECK);
	CHECK_STR(commands_verb_name(COMMANDS_RECHECK), "recheck");
}

static void test_autohold_takes_a_job_a_count_and_the_rest_as_reason(void)
{
	struct commands_parsed c;
	CHECK_INT(parse("!zuul autohold tox-py311 the mirror times out\n  again", &c), COMMANDS_AUTOHOLD);
	CHECK_STR(c.job, "tox-py311");
	CHECK_INT(c.count, 1);
	CHECK_STR(c.reason, "the mirror times out\n  again");
	commands_parsed_clear(&c);
	CHECK_INT(parse("!zuul autohold  lint 3   why not, with many many many many many words here ", &c),
		  COMMANDS_AUTOHOLD);
	CHECK_STR(c.job, "lint");
	CHECK_INT(c.count, 3);
	CHECK_STR(c.reason, "why not, with many many many many many words here");
	commands_parsed_clear(&c);
	CHECK_INT(parse("!zuul autohold delete 0000000042", &c), COMMANDS_AUTOHOLD_DELETE);
	CHECK_STR(c.hold_id, "0000000042");
	commands_parsed_clear(&c);
	check_error("!zuul autohold", "usage: !zuul autohold JOB [COUNT] REASON");
	check_error("!zuul autohold lint", "usage: !zuul autohold JOB [COUNT] REASON");
	check_error("!zuul autohold lint 2", "usage: !zuul autohold JOB [COUNT] REASON");
	check_error("!zuul autohold lint 11 too many", "COUNT is 1 to 10");
	check_error("!zuul autohold lint 0 none", "COUNT is 1 to 10");
	check_error("!zuul autohold @room x", "JOB is not a Zuul name");
	check_error("!zuul autohold delete", "usage: !zuul autohold delete ID");
	check_error("!zuul autohold delete 1 2", "usage: !zuul autohold delete ID");
	check_error("!zuul autohold delete <b>", "usage: !zuul autohold delete ID");
	char body[1200] = "!zuul autohold lint ";
	memset(body + strlen(body), 'x', 1030);
	check_error(body, "the reason is too long");
}

int main(void)
{
	RUN(test_messages_without_the_prefix_are_ignored);
	RUN(test_prefix_alone_or_with_whitespace_is_help);
	RUN(test_every_verb_parses);
	RUN(test_custom_prefixes);
	RUN(test_reply_fallback_is_skipped);
	RUN(test_mute_a_project);
	RUN(test_mute_one_job);
	RUN(test_mute_mistakes_get_helpful_errors);
	RUN(test_unmute);
	RUN(test_owners_of_a_project_or_job);
	RUN(test_workflow_takes_no_arguments);
	RUN(test_commands_without_arguments_refuse_them);
	RUN(test_unknown_verbs);
	RUN(test_long_bodies);
	RUN(test_control_characters_and_bad_utf8);
	RUN(test_flaky_takes_an_optional_project);
	RUN(test_help_lists_every_command_on_one_line);
	RUN(test_power_levels_follow_the_spec);
	RUN(test_redactions_stand_for_the_sender_or_a_moderator);
	RUN(test_creators_of_version_12_rooms_outrank_every_level);
	RUN(test_allowed_compares_levels);
	RUN(test_reactions_ignore_the_variation_selector);
	RUN(test_verb_names_and_clearing);
	RUN(test_recheck_dequeue_and_autoholds_take_no_arguments);
	RUN(test_autohold_takes_a_job_a_count_and_the_rest_as_reason);
	return test_done();
}
