/* fuzz_commands: libFuzzer target for what a room member sends the chatops commands:
 * the input as a message body through commands_parse, and split in two as a power_levels
 * content and a user id (commands_user_level) and as two reaction keys. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "commands.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed clock: `until` must then be exactly this plus the duration. */
#define FUZZ_NOW ((time_t)1700000000)

static char *cstr(const uint8_t *p, size_t n)
{
	char *s = xmalloc(n + 1);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* The promises of commands.h a caller relies on, checked for every parse. */
static void check_parsed(enum commands_verb verb, const struct commands_parsed *c)
{
	if (verb != c->verb)
		abort();
	switch (c->verb) {
	case COMMANDS_INVALID:
		if (!c->error || !*c->error || c->project || c->job)
			abort(); /* an invalid command always says why, and names nothing */
		break;
	case COMMANDS_MUTE:
		if (!c->project || c->duration_s < 1 || c->duration_s > COMMANDS_MUTE_MAX_S ||
		    c->until != FUZZ_NOW + (time_t)c->duration_s)
			abort();
		/* fall through: the names obey the same rules as for unmute */
	case COMMANDS_UNMUTE:
	case COMMANDS_OWNERS:
		if (!c->project || c->error)
			abort();
		if (strlen(c->project) > COMMANDS_NAME_MAX || (c->job && strlen(c->job) > COMMANDS_NAME_MAX))
			abort();
		/* Names are echoed in replies: nothing that could ping ("@room") or format. */
		if (strpbrk(c->project, "@<> \t\n") || (c->job && strpbrk(c->job, "@<> \t\n")))
			abort();
		break;
	default:
		if (c->project || c->job || c->error)
			abort();
		break;
	}
	if (strcmp(commands_verb_name(c->verb), "unknown") == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Warnings about bad input are expected here; thousands of lines would hide findings. */
	log_set_level(ZLOG_ERROR);
	/* 1. The whole input as a message body (a NUL inside ends it, as in a C string). */
	char *body = cstr(data, size);
	struct commands_parsed c;
	enum commands_verb verb = commands_parse(body, "!zuul", FUZZ_NOW, &c);
	check_parsed(verb, &c);
	commands_parsed_clear(&c);
	/* Clearing twice is allowed (the struct is zeroed). */
	commands_parsed_clear(&c);
	free(body);

	if (size == 0)
		return 0;
	/* 2. The first byte picks where the rest splits: power_levels JSON, then a user id. */
	const uint8_t *rest = data + 1;
	size_t n = size - 1;
	size_t cut = n ? data[0] % (n + 1) : 0;
	char *left = cstr(rest, cut);
	char *right = cstr(rest + cut, n - cut);
	cJSON *pl = cJSON_ParseWithLength((const char *)rest, cut);
	static const char creator[] = "@creator:example.org";
	long long level = commands_user_level(pl, right, creator);
	long long level2 = commands_user_level(pl, right, right);
	/* Without the event: the creator has 100, everybody else 0. */
	if (!cJSON_IsObject(pl) && (level != (strcmp(right, creator) == 0 ? 100 : 0) || level2 != 100))
		abort();
	char *refusal = commands_refusal("!zuul", level, 50);
	free(refusal);
	(void)commands_allowed(level, 50);
	cJSON_Delete(pl);

	/* 3. The same halves as a reaction key and the configured one: symmetric, and a key
	 * always matches itself. */
	bool ab = commands_reaction_matches(left, right);
	bool ba = commands_reaction_matches(right, left);
	if (ab != ba || !commands_reaction_matches(left, left))
		abort();
	(void)commands_reaction_matches(right, "\xe2\x9c\x85");
	free(left);
	free(right);
	return 0;
}
