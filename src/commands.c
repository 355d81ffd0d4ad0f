/* commands: room command parsing, help text and power-level checks for chatops.
 * Pure: the bridge passes the message body, the power-levels content and `now`. */
#include "commands.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "strbuf.h"

/* More words than any command takes, plus one to notice the excess. */
#define MAX_WORDS 8

static const struct {
	const char *name;
	enum commands_verb verb;
} verbs[] = {
    {"help", COMMANDS_HELP},     {"oncall", COMMANDS_ONCALL},     {"claims", COMMANDS_CLAIMS},
    {"mute", COMMANDS_MUTE},     {"unmute", COMMANDS_UNMUTE},     {"status", COMMANDS_STATUS},
    {"owners", COMMANDS_OWNERS}, {"workflow", COMMANDS_WORKFLOW}, {"flaky", COMMANDS_FLAKY},
    {"recheck", COMMANDS_RECHECK}, {"dequeue", COMMANDS_DEQUEUE}, {"autohold", COMMANDS_AUTOHOLD},
    {"autoholds", COMMANDS_AUTOHOLDS}, {"autohold-delete", COMMANDS_AUTOHOLD_DELETE},
};

const char *commands_verb_name(enum commands_verb verb)
{
	if (verb == COMMANDS_NONE)
		return "none";
	if (verb == COMMANDS_INVALID)
		return "invalid";
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "unknown";
}

void commands_parsed_clear(struct commands_parsed *c)
{
	if (!c)
		return;
	free(c->project);
	free(c->job);
	free(c->error);
	free(c->reason);
	free(c->hold_id);
	memset(c, 0, sizeof(*c));
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Length of the well-formed UTF-8 sequence at p, 0 when it is not one. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned c = p[0];
	if (c < 0x80)
		return 1;
	size_t n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
	if (n == 0 || (n == 2 && c < 0xc2) || (n == 4 && c > 0xf4))
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((n == 3 && c == 0xe0 && p[1] < 0xa0) || (n == 3 && c == 0xed && p[1] >= 0xa0) ||
	    (n == 4 && c == 0xf0 && p[1] < 0x90) || (n == 4 && c == 0xf4 && p[1] >= 0x90))
		return 0; /* overlong, surrogate, past U+10FFFF */
	return n;
}

/* A reply's fallback ("> <@a:x> quoted\n> more\n\nreply") hides the command behind the
 * quote; the quote is never a command itself. Returns where the reply text starts, or
 * NULL when the quote is not followed by a blank line (then there is no reply text). */
static const char *skip_reply_fallback(const char *body)
{
	const char *p = body;
	while (*p == '>') {
		const char *nl = strchr(p, '\n');
		if (!nl)
			return NULL;
		p = nl + 1;
	}
	if (p == body)
		return body;
	if (*p == '\r')
		p++;
	return *p == '\n' ? p + 1 : NULL;
}

static void set_error(struct commands_parsed *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct commands_parsed *out, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vprintf(&sb, fmt, ap);
	va_end(ap);
	free(out->project);
	free(out->job);
	free(out->reason);
	free(out->hold_id);
	out->project = out->job = out->reason = out->hold_id = NULL;
	out->count = 0;
	out->duration_s = 0;
	out->until = 0;
	out->verb = COMMANDS_INVALID;
	out->error = strbuf_detach(&sb);
}

/* Zuul project and job names; the set also keeps "@room" and markup out of replies that
 * quote them. */
static bool name_ok(const char *w, size_t n)
{
	if (n == 0 || n > COMMANDS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = w[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("._-/+:~", c)))
			return false;
	}
	return true;
}

/* A word that may be echoed in a reply: short and plain, so it cannot ping or format. */
static bool echo_ok(const char *w, size_t n)
{
	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((w[i] >= 'a' && w[i] <= 'z') || (w[i] >= 'A' && w[i] <= 'Z') || (w[i] >= '0' && w[i] <= '9') ||
		      w[i] == '-' || w[i] == '_'))
			return false;
	return true;
}

struct word {
	const char *p;
	size_t n;
};

static bool word_is(const struct word *w, const char *lower)
{
	size_t n = strlen(lower);
	if (w->n != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = w->p[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lower[i])
			return false;
	}
	return true;
}

/* Checks and copies PROJECT and the optional JOB (the first n words) into out; false,
 * with the reply in out->error, when one is not a Zuul name. */
static bool take_names(const struct word *args, size_t n, struct commands_parsed *out)
{
	for (size_t i = 0; i < n; i++) {
		if (!name_ok(args[i].p, args[i].n)) {
			set_error(out,
				  "%s is not a Zuul name (expected letters, digits and . _ - / + : ~, "
				  "at most %d characters)",
				  i == 0 ? "PROJECT" : "JOB", COMMANDS_NAME_MAX);
			return false;
		}
	}
	out->project = xstrndup(args[0].p, args[0].n);
	if (n == 2)
		out->job = xstrndup(args[1].p, args[1].n);
	return true;
}

static void parse_mute(const char *prefix, const struct word *args, size_t nargs, time_t now,
		       struct commands_parsed *out)
{
	static const char *const example = "e.g. %s mute SovereignCloudStack/standards 2h, or "
					   "%s mute SovereignCloudStack/standards tox-py311 1d";
	if (nargs < 2 || nargs > 3) {
		struct strbuf sb = STRBUF_INIT;
		strbuf_printf(&sb, example, prefix, prefix);
		set_error(out, "usage: %s mute PROJECT [JOB] DURATION (%s)", prefix, strbuf_str(&sb));
		strbuf_free(&sb);
		return;
	}
	const struct word *d = &args[nargs - 1];
	char dur[32];
	long long secs = -1;
	if (d->n < sizeof(dur)) {
		memcpy(dur, d->p, d->n);
		dur[d->n] = '\0';
		if (duration_parse(dur, &secs) != 0)
			secs = -1;
	}
	if (secs <= 0 || secs > COMMANDS_MUTE_MAX_S) {
		if (secs == 0)
			set_error(out, "a mute lasts at least 1s (and at most 30d)");
		else if (secs > COMMANDS_MUTE_MAX_S)
			set_error(out, "a mute lasts at most 30d; to silence a project for good, exclude it "
				       "in the route's config");
		else if (echo_ok(d->p, d->n))
			set_error(out,
				  "\"%.*s\" is not a duration (expected e.g. 30m, 2h, 1d, 1w; the duration "
				  "comes last: %s mute PROJECT [JOB] DURATION)",
				  (int)d->n, d->p, prefix);
		else
			set_error(out,
				  "the last word is not a duration (expected e.g. 30m, 2h, 1d, 1w: "
				  "%s mute PROJECT [JOB] DURATION)",
				  prefix);
		return;
	}
	if (!take_names(args, nargs - 1, out))
		return;
	out->duration_s = secs;
	out->until = now + (time_t)secs;
}

static void parse_unmute(const char *prefix, const struct word *args, size_t nargs, struct commands_parsed *out)
{
	if (nargs < 1 || nargs > 2) {
		set_error(out, "usage: %s unmute PROJECT [JOB], with the words it was muted with", prefix);
		return;
	}
	take_names(args, nargs, out);
}

static void parse_owners(const char *prefix, const struct word *args, size_t nargs, struct commands_parsed *out)
{
	if (nargs < 1 || nargs > 2) {
		set_error(out,
			  "usage: %s owners PROJECT [JOB] (e.g. %s owners SovereignCloudStack/standards, or "
			  "%s owners SovereignCloudStack/standards tox-py311)",
			  prefix, prefix, prefix);
		return;
	}
	take_names(args, nargs, out);
}

static void parse_flaky(const char *prefix, const struct word *args, size_t nargs, struct commands_parsed *out)
{
	if (nargs > 1) {
		set_error(out, "usage: %s flaky [PROJECT] (e.g. %s flaky, or %s flaky SovereignCloudStack/standards)",
			  prefix, prefix, prefix);
		return;
	}
	if (nargs == 1)
		take_names(args, 1, out);
}

/* `autohold delete ID` or `autohold JOB [COUNT] REASON...`: rest is the text after the verb,
 * whole, so a reason keeps its words (and lines) as typed. */
static void parse_autohold(const char *prefix, const char *rest, struct commands_parsed *out)
{
	struct word w[3];
	size_t nw = 0;
	const char *q = rest;
	for (; nw < 3;) {
		while (is_space(*q))
			q++;
		if (!*q)
			break;
		const char *start = q;
		while (*q && !is_space(*q))
			q++;
		w[nw++] = (struct word){start, (size_t)(q - start)};
	}
	static const char usage[] = "usage: %s autohold JOB [COUNT] REASON, in a failure's thread (e.g. %s autohold "
				    "tox-py311 2 the mirror times out), or %s autohold delete ID";
	if (nw >= 1 && word_is(&w[0], "delete")) {
		bool id_ok = nw == 2 && w[1].n <= COMMANDS_HOLD_ID_MAX && echo_ok(w[1].p, w[1].n);
		if (nw != 2 || !id_ok) {
			set_error(out, "usage: %s autohold delete ID (the id %s autoholds shows)", prefix, prefix);
			return;
		}
		const char *after = w[1].p + w[1].n;
		while (is_space(*after))
			after++;
		if (*after) {
			set_error(out, "usage: %s autohold delete ID (the id %s autoholds shows)", prefix, prefix);
			return;
		}
		out->verb = COMMANDS_AUTOHOLD_DELETE;
		out->hold_id = xstrndup(w[1].p, w[1].n);
		return;
	}
	if (nw < 2) {
		set_error(out, usage, prefix, prefix, prefix);
		return;
	}
	if (!name_ok(w[0].p, w[0].n)) {
		set_error(out, "JOB is not a Zuul name (expected letters, digits and . _ - / + : ~, at most %d characters)",
			  COMMANDS_NAME_MAX);
		return;
	}
	const char *reason = w[1].p;
	int count = 1;
	size_t digits = strspn(w[1].p, "0123456789");
	if (digits == w[1].n) {
		if (w[1].n > 3 || atoi(w[1].p) < 1 || atoi(w[1].p) > COMMANDS_AUTOHOLD_COUNT_MAX) {
			set_error(out, "COUNT is 1 to %d: the nodes of that many failed builds are held",
				  COMMANDS_AUTOHOLD_COUNT_MAX);
			return;
		}
		count = atoi(w[1].p);
		if (nw < 3) {
			set_error(out, usage, prefix, prefix, prefix);
			return;
		}
		reason = w[2].p;
	}
	size_t n = strlen(reason);
	while (n > 0 && is_space(reason[n - 1]))
		n--;
	if (n > COMMANDS_REASON_MAX) {
		set_error(out, "the reason is too long (at most %d bytes: Zuul keeps no more)", COMMANDS_REASON_MAX);
		return;
	}
	out->verb = COMMANDS_AUTOHOLD;
	out->job = xstrndup(w[0].p, w[0].n);
	out->count = count;
	out->reason = xstrndup(reason, n);
}

enum commands_verb commands_parse(const char *body, const char *prefix, time_t now, struct commands_parsed *out)
{
	memset(out, 0, sizeof(*out));
	if (!body || !prefix || !*prefix)
		return COMMANDS_NONE;
	const char *p = body;
	if (*p == '>' && !(p = skip_reply_fallback(body)))
		return COMMANDS_NONE;
	size_t plen = strlen(prefix);
	if (strncmp(p, prefix, plen) != 0 || (p[plen] != '\0' && !is_space(p[plen])))
		return COMMANDS_NONE;
	p += plen;

	/* From here on it is meant as a command: every problem gets a reply. */
	size_t len = strnlen(p, COMMANDS_BODY_MAX + 1);
	if (len > COMMANDS_BODY_MAX) {
		set_error(out, "that command is too long (at most %d characters)", COMMANDS_BODY_MAX);
		return out->verb;
	}
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && !is_space((char)c)) || c == 0x7f) {
			set_error(out, "that command contains control characters; type it as plain text");
			return out->verb;
		}
		size_t n = utf8_len((const unsigned char *)p + i);
		if (n == 0) {
			set_error(out, "that command is not valid UTF-8");
			return out->verb;
		}
		i += n;
	}

	struct word words[MAX_WORDS];
	size_t nw = 0;
	/* autohold's reason is free text: the verb is read alone, the rest kept as typed. */
	const char *verb_start = p;
	while (is_space(*verb_start))
		verb_start++;
	size_t verb_len = strcspn(verb_start, " \t\r\n");
	struct word first = {verb_start, verb_len};
	if (word_is(&first, "autohold")) {
		parse_autohold(prefix, verb_start + verb_len, out);
		return out->verb;
	}
	for (const char *q = p; *q;) {
		while (is_space(*q))
			q++;
		if (!*q)
			break;
		const char *start = q;
		while (*q && !is_space(*q))
			q++;
		if (nw == MAX_WORDS) {
			set_error(out, "too many words; try %s help", prefix);
			return out->verb;
		}
		words[nw++] = (struct word){start, (size_t)(q - start)};
	}
	if (nw == 0) {
		out->verb = COMMANDS_HELP;
		return out->verb;
	}

	enum commands_verb verb = COMMANDS_NONE;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (word_is(&words[0], verbs[i].name))
			verb = verbs[i].verb;
	const struct word *args = words + 1;
	size_t nargs = nw - 1;
	switch (verb) {
	case COMMANDS_HELP:
		out->verb = verb; /* "help mute" still gets the whole list, which is short */
		break;
	case COMMANDS_ONCALL:
	case COMMANDS_CLAIMS:
	case COMMANDS_STATUS:
	case COMMANDS_WORKFLOW:
	case COMMANDS_RECHECK:
	case COMMANDS_DEQUEUE:
	case COMMANDS_AUTOHOLDS:
		if (nargs > 0)
			set_error(out, "%s %s takes no arguments", prefix, commands_verb_name(verb));
		else
			out->verb = verb;
		break;
	case COMMANDS_MUTE:
		out->verb = verb;
		parse_mute(prefix, args, nargs, now, out);
		break;
	case COMMANDS_UNMUTE:
		out->verb = verb;
		parse_unmute(prefix, args, nargs, out);
		break;
	case COMMANDS_OWNERS:
		out->verb = verb;
		parse_owners(prefix, args, nargs, out);
		break;
	case COMMANDS_FLAKY:
		out->verb = verb;
		parse_flaky(prefix, args, nargs, out);
		break;
	default:
		if (echo_ok(words[0].p, words[0].n))
			set_error(out,
				  "unknown command \"%.*s\"; the commands are help, oncall, claims, mute, "
				  "unmute, status, owners, workflow, flaky, recheck, dequeue, autohold and "
				  "autoholds (%s help explains them)",
				  (int)words[0].n, words[0].p, prefix);
		else
			set_error(out,
				  "unknown command; the commands are help, oncall, claims, mute, unmute, "
				  "status, owners, workflow, flaky, recheck, dequeue, autohold and autoholds "
				  "(%s help explains them)",
				  prefix);
		break;
	}
	return out->verb;
}

char *commands_help(const char *prefix, long long required_level, bool actions)
{
	struct strbuf sb = STRBUF_INIT;
	const char *x = prefix;
	if (required_level > 0)
		strbuf_printf(&sb, "Commands (for members with power level %lld or more):\n", required_level);
	else
		strbuf_puts(&sb, "Commands:\n");
	strbuf_printf(&sb, "%s help: this list\n", x);
	strbuf_printf(&sb, "%s oncall: who is on call now and next, and when they hand over\n", x);
	strbuf_printf(&sb, "%s claims: open failures, who claimed them and how long ago\n", x);
	strbuf_printf(&sb,
		      "%s mute PROJECT [JOB] DURATION: count but do not post failures of a project "
		      "(or one of its jobs) for DURATION, e.g. 2h or 1d, at most 30d\n",
		      x);
	strbuf_printf(&sb, "%s unmute PROJECT [JOB]: end a mute now\n", x);
	strbuf_printf(&sb, "%s status: MQTT and Matrix connections, outbox depth, last report\n", x);
	strbuf_printf(&sb,
		      "%s owners PROJECT [JOB]: who owns a project (or one of its jobs), by which owners "
		      "rule, and where its failures are forwarded\n",
		      x);
	strbuf_printf(&sb, "%s workflow: this room's agreed way of handling failures\n", x);
	strbuf_printf(&sb, "%s flaky [PROJECT]: the jobs of this room's routes that failed and passed again "
			   "lately, flakiest first\n", x);
	if (!actions)
		return strbuf_detach(&sb);
	strbuf_printf(&sb, "In a failure's thread, for the users allowed to act on its Zuul tenant:\n");
	strbuf_printf(&sb, "%s recheck (or react \U0001F501 to the failure): enqueue the failed item again\n", x);
	strbuf_printf(&sb, "%s dequeue: remove the item from its pipeline (after you confirm with a reaction)\n", x);
	strbuf_printf(&sb,
		      "%s autohold JOB [COUNT] REASON: keep the nodes of the next COUNT (1-10) failed builds of JOB "
		      "for this change or ref (after you confirm)\n",
		      x);
	strbuf_printf(&sb, "%s autoholds: the tenant's holds; %s autohold delete ID removes one\n", x, x);
	return strbuf_detach(&sb);
}

/* Power levels are integers; old room versions let servers store them as strings ("50"). */
static bool level_value(const cJSON *v, long long *out)
{
	/* The spec's integer range, [-(2^53)+1, (2^53)-1]. */
	const double limit = 9007199254740991.0;
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (!(d >= -limit && d <= limit))
			return false;
		*out = (long long)d;
		return true;
	}
	if (cJSON_IsString(v) && v->valuestring) {
		const char *s = v->valuestring;
		size_t i = (*s == '-' || *s == '+') ? 1 : 0;
		if (!s[i] || strlen(s + i) > 16)
			return false;
		for (const char *q = s + i; *q; q++)
			if (*q < '0' || *q > '9')
				return false;
		*out = strtoll(s, NULL, 10);
		return true;
	}
	return false;
}

long long commands_user_level(const cJSON *power_levels, const char *user_id, const char *creator)
{
	if (!cJSON_IsObject(power_levels))
		return creator && user_id && strcmp(creator, user_id) == 0 ? 100 : 0;
	long long level;
	const cJSON *users = cJSON_GetObjectItemCaseSensitive(power_levels, "users");
	if (user_id && cJSON_IsObject(users)) {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(users, user_id);
		if (u && level_value(u, &level))
			return level;
	}
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(power_levels, "users_default");
	if (d && level_value(d, &level))
		return level;
	return 0;
}

/* Room versions from 12 on are plain integers; the one unstable identifier of MSC4289 is
 * "org.matrix.hydra.11". */
static bool version_has_privileged_creators(const char *version)
{
	if (!version)
		return false;
	if (strcmp(version, "org.matrix.hydra.11") == 0)
		return true;
	if (!*version || strlen(version) > 9 || strspn(version, "0123456789") != strlen(version))
		return false;
	return atol(version) >= 12;
}

bool commands_creator_outranks(const cJSON *create_content, const char *creator, const char *user_id)
{
	if (!user_id || !cJSON_IsObject(create_content))
		return false;
	const cJSON *version = cJSON_GetObjectItemCaseSensitive(create_content, "room_version");
	if (!version_has_privileged_creators(cJSON_IsString(version) ? version->valuestring : "1"))
		return false;
	if (creator && strcmp(creator, user_id) == 0)
		return true;
	const cJSON *more = cJSON_GetObjectItemCaseSensitive(create_content, "additional_creators");
	const cJSON *it;
	cJSON_ArrayForEach(it, more)
	if (cJSON_IsString(it) && strcmp(it->valuestring, user_id) == 0)
		return true;
	return false;
}

long long commands_redact_level(const cJSON *power_levels)
{
	long long level;
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(power_levels, "redact");
	return r && level_value(r, &level) ? level : 50;
}

long long commands_state_level(const cJSON *power_levels, const char *event_type)
{
	if (!cJSON_IsObject(power_levels))
		return 0;
	long long level;
	const cJSON *events = cJSON_GetObjectItemCaseSensitive(power_levels, "events");
	if (level_value(cJSON_GetObjectItemCaseSensitive(events, event_type), &level))
		return level;
	if (level_value(cJSON_GetObjectItemCaseSensitive(power_levels, "state_default"), &level))
		return level;
	return 50;
}

bool commands_redaction_stands(const char *redactor, long long redactor_level, const char *reaction_sender,
			       long long redact_level)
{
	if (!redactor || !reaction_sender)
		return false;
	return strcmp(redactor, reaction_sender) == 0 || redactor_level >= redact_level;
}

bool commands_allowed(long long level, long long required)
{
	return level >= required;
}

char *commands_refusal(const char *prefix, long long level, long long required)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "Sorry, %s commands need power level %lld in this room; you have %lld.", prefix, required,
		      level);
	return strbuf_detach(&sb);
}

/* Advances past any U+FE0F (EF B8 8F) at p. */
static const char *skip_vs16(const char *p)
{
	while ((unsigned char)p[0] == 0xef && (unsigned char)p[1] == 0xb8 && (unsigned char)p[2] == 0x8f)
		p += 3;
	return p;
}

bool commands_reaction_matches(const char *key, const char *configured)
{
	if (!key || !configured)
		return false;
	const char *a = skip_vs16(key), *b = skip_vs16(configured);
	while (*a && *b) {
		if (*a != *b)
			return false;
		a = skip_vs16(a + 1);
		b = skip_vs16(b + 1);
	}
	return *a == '\0' && *b == '\0';
}
