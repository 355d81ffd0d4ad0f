/* config chatops: the chatops group (claims, commands, reactions, the on-call rotation and
 * its overrides) and each route's chatops keys (mentions, runbook, hint, daily digest). */
#include "config.h"
#include "config_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The keys of the chatops group, its oncall group and each override, in the order messages list them. */
static const char *const chatops_keys[] = {
	"enabled", "claims", "commands", "claim_reaction", "resolve_reaction", "command_prefix",
	"command_power_level", "threads", "escalate_after", "fallback_after", "fallback", "oncall", "workflow", "workflow_file",
	"catch_up_after", "topic", "topic_note", NULL,
};
static const char *const oncall_keys[] = {
	"members", "shift", "handover", "timezone", "start", "overrides", NULL,
};
static const char *const override_keys[] = {
	"from", "to", "user", NULL,
};

/* Reaction keys and the command prefix are compared byte for byte with what clients send,
 * so whitespace, control characters or broken UTF-8 in them can only be typos. */
static void get_chatops_word(struct loader *ld, const config_setting_t *grp, const char *key,
			     const char *expected, char **out)
{
	const char *v = NULL;
	if (!get_string(ld, grp, "chatops", key, &v) || !v)
		return;
	const char *why = NULL;
	if (!*v)
		why = "empty";
	else if (strlen(v) > 64)
		why = "longer than 64 bytes";
	else if (!utf8_valid(v))
		why = "not valid UTF-8";
	for (const char *p = v; !why && *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			why = "contains whitespace or control characters";
	if (why) {
		report(ld, config_setting_get_member(grp, key), "chatops.%s: bad value \"%s\" (%s; expected %s)",
		       key, v, why, expected);
		return;
	}
	free(*out);
	*out = xstrdup(v);
}

/* a and b without any U+FE0F are equal: the bridge ignores that selector in reactions
 * (commands_reaction_matches), so "✅" and "✅️" would be one reaction. */
static bool same_reaction(const char *a, const char *b)
{
	static const char vs16[] = "\xef\xb8\x8f";
	for (;;) {
		while (strncmp(a, vs16, 3) == 0)
			a += 3;
		while (strncmp(b, vs16, 3) == 0)
			b += 3;
		if (*a != *b)
			return false;
		if (!*a)
			return true;
		a++;
		b++;
	}
}

/* The keys rotation_check() names in its problems, where they live and what to say
 * when its message does not already say what is expected. */
enum rotation_key {
	RK_MEMBERS, RK_SHIFT, RK_HANDOVER, RK_TIMEZONE, RK_START, RK_OVERRIDES,
	RK_ESCALATE_AFTER, RK_FALLBACK_AFTER, RK_FALLBACK, RK_COUNT
};
static const struct {
	const char *name;
	bool in_oncall; /* chatops.oncall.NAME, else chatops.NAME */
	const char *expected;
} rotation_keys[RK_COUNT] = {
	[RK_MEMBERS] = {"members", true, "members = [\"@alice:example.org\", \"@bob:example.org\"];"},
	[RK_SHIFT] = {"shift", true, "a whole number of days such as \"7d\""},
	[RK_HANDOVER] = {"handover", true, "\"Mon 09:00\" or \"09:00\""},
	[RK_TIMEZONE] = {"timezone", true, "a tz database name such as \"Europe/Berlin\""},
	[RK_START] = {"start", true, "a date YYYY-MM-DD"},
	[RK_OVERRIDES] = {"overrides", true, "to on or after from"},
	[RK_ESCALATE_AFTER] = {"escalate_after", false, "a duration such as \"1h\", or 0 for never"},
	[RK_FALLBACK_AFTER] = {"fallback_after", false, "a duration such as \"1h\" when fallback is set"},
	[RK_FALLBACK] = {"fallback", false, "fallback = [\"@lead:example.org\"]; or no fallback_after"},
};

/* What the loader already reported, so that rotation_check() does not repeat it in other
 * words ("start: missing" after "start: bad date"). */
struct rotation_src {
	const config_setting_t *chatops;
	const config_setting_t *oncall; /* NULL: no oncall group, its keys are not checked */
	bool bad[RK_COUNT];
	bool *bad_override; /* one per override */
};

/* "KEY: why" with " (expected ...)" added when why does not say it already. */
static void report_hint(struct loader *ld, const config_setting_t *s, const char *key, const char *why,
			const char *expected)
{
	if (strchr(why, '('))
		report(ld, s, "%s: %s", key, why);
	else
		report(ld, s, "%s: %s (expected %s)", key, why, expected);
}

/* Reports each line of rotation_check() at the line of the setting it is about. */
static void report_rotation_problems(struct loader *ld, const struct rotation_src *src, const char *problems)
{
	for (const char *line = problems; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char *text = xstrndup(line, len);
		line += len + (nl ? 1 : 0);

		size_t klen = strcspn(text, "[:");
		int k = 0;
		while (k < RK_COUNT && !(strlen(rotation_keys[k].name) == klen &&
					 strncmp(text, rotation_keys[k].name, klen) == 0))
			k++;
		long idx = -1;
		const char *rest = text + klen;
		if (*rest == '[') {
			char *end;
			idx = strtol(rest + 1, &end, 10);
			rest = *end == ']' ? end + 1 : rest;
		}
		if (*rest == ':')
			rest++;
		while (*rest == ' ')
			rest++;
		if (k == RK_COUNT) { /* a key this loader does not know: still an error */
			report(ld, src->chatops, "chatops: %s", text);
			free(text);
			continue;
		}
		const config_setting_t *grp = rotation_keys[k].in_oncall ? src->oncall : src->chatops;
		if (!grp || src->bad[k] || (k == RK_OVERRIDES && idx >= 0 && src->bad_override && src->bad_override[idx])) {
			free(text);
			continue;
		}
		const config_setting_t *at = config_setting_get_member(grp, rotation_keys[k].name);
		if (at && idx >= 0 && idx < config_setting_length(at))
			at = config_setting_get_elem(at, (unsigned)idx);
		/* "fallback: empty, but fallback_after is set": the line that set the other one. */
		if (!at && k == RK_FALLBACK)
			at = config_setting_get_member(grp, rotation_keys[RK_FALLBACK_AFTER].name);
		struct strbuf why = STRBUF_INIT;
		const char *member = "";
		if (k == RK_OVERRIDES) {
			/* rotation.h calls the last day `until`; the file calls it `to`. */
			const config_setting_t *m = NULL;
			if (at && strstr(rest, "user id")) {
				m = config_setting_get_member(at, "user");
				member = m ? ".user" : "";
			} else if (at && strstr(rest, "until")) {
				m = config_setting_get_member(at, "to");
			}
			at = m ? m : at;
			for (const char *p = rest; *p;) {
				if (strncmp(p, "until ", 6) == 0) {
					strbuf_puts(&why, "to ");
					p += 6;
				} else {
					strbuf_putc(&why, *p++);
				}
			}
		} else {
			strbuf_puts(&why, rest);
		}
		char key[96];
		snprintf(key, sizeof key, "chatops.%s%s", rotation_keys[k].in_oncall ? "oncall." : "",
			 rotation_keys[k].name);
		if (idx >= 0)
			snprintf(key + strlen(key), sizeof key - strlen(key), "[%ld]%s", idx, member);
		report_hint(ld, at ? at : grp, key, strbuf_str(&why), rotation_keys[k].expected);
		strbuf_free(&why);
		free(text);
	}
}

/* A required date of an override: false after reporting. */
static bool get_override_date(struct loader *ld, const config_setting_t *e, const char *pfx, const char *key,
			      const char *expected, struct rotation_date *out)
{
	char path[96];
	key_path(path, sizeof path, pfx, key);
	const config_setting_t *s = config_setting_get_member(e, key);
	if (!s) {
		report(ld, e, "%s: missing (expected %s)", path, expected);
		return false;
	}
	const char *v = NULL;
	if (!get_string(ld, e, pfx, key, &v))
		return false;
	struct strbuf why = STRBUF_INIT;
	bool ok = rotation_parse_date(v, out, &why) == 0;
	if (!ok)
		report_hint(ld, s, path, strbuf_str(&why), expected);
	strbuf_free(&why);
	return ok;
}

static void load_overrides(struct loader *ld, const config_setting_t *s, struct rotation_config *rc,
			   struct rotation_src *src)
{
	static const char *const shape = "a list of groups: overrides = ( { from = \"2026-03-02\"; "
					 "to = \"2026-03-08\"; user = \"@bob:example.org\"; } )";
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0)) {
		type_error(ld, s, "chatops.oncall.overrides", shape);
		src->bad[RK_OVERRIDES] = true;
		return;
	}
	int n = config_setting_length(s);
	if (n == 0)
		return;
	rc->overrides = xcalloc((size_t)n, sizeof(*rc->overrides));
	rc->n_overrides = (size_t)n;
	src->bad_override = xcalloc((size_t)n, sizeof(bool));
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct rotation_override *o = &rc->overrides[i];
		char pfx[64];
		snprintf(pfx, sizeof pfx, "chatops.oncall.overrides[%d]", i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			type_error(ld, e, pfx, "a group { from = \"YYYY-MM-DD\"; to = \"YYYY-MM-DD\"; user = \"@x:y\"; }");
			src->bad_override[i] = true;
			continue;
		}
		check_keys(ld, e, pfx, override_keys);
		bool ok = get_override_date(ld, e, pfx, "from", "the first on-call day of the override, YYYY-MM-DD",
					    &o->from);
		ok &= get_override_date(ld, e, pfx, "to", "the last on-call day of the override, YYYY-MM-DD", &o->until);
		const char *user = NULL;
		if (!config_setting_get_member(e, "user")) {
			report(ld, e, "%s.user: missing (expected the Matrix user id on call instead, e.g. "
				      "user = \"@bob:example.org\";)", pfx);
			ok = false;
		} else if (get_string(ld, e, pfx, "user", &user)) {
			o->user = xstrdup(user);
		} else {
			ok = false;
		}
		src->bad_override[i] = !ok;
	}
}

static void load_oncall(struct loader *ld, const config_setting_t *grp, struct rotation_config *rc,
			struct rotation_src *src)
{
	const char *pfx = "chatops.oncall";
	check_keys(ld, grp, pfx, oncall_keys);
	const config_setting_t *s = config_setting_get_member(grp, "members");
	if (s && !get_string_list(ld, s, "chatops.oncall.members", true, &rc->members, &rc->n_members))
		src->bad[RK_MEMBERS] = true;

	rc->shift_s = 7 * 86400;
	if (!get_duration(ld, grp, pfx, "shift", 0, 3650LL * 86400, &rc->shift_s))
		src->bad[RK_SHIFT] = true;

	rc->handover_weekday = 1; /* Monday */
	rc->handover_minute = 9 * 60;
	const char *v = NULL;
	if (!get_string(ld, grp, pfx, "handover", &v)) {
		src->bad[RK_HANDOVER] = true;
	} else if (v) {
		struct strbuf why = STRBUF_INIT;
		if (rotation_parse_handover(v, &rc->handover_weekday, &rc->handover_minute, &why) != 0) {
			report_hint(ld, config_setting_get_member(grp, "handover"), "chatops.oncall.handover",
				    strbuf_str(&why), rotation_keys[RK_HANDOVER].expected);
			src->bad[RK_HANDOVER] = true;
		}
		strbuf_free(&why);
	}

	v = "UTC";
	if (!get_string(ld, grp, pfx, "timezone", &v))
		src->bad[RK_TIMEZONE] = true;
	rc->timezone = xstrdup(v);

	v = NULL;
	if (!get_string(ld, grp, pfx, "start", &v)) {
		src->bad[RK_START] = true;
	} else if (v) {
		struct strbuf why = STRBUF_INIT;
		if (rotation_parse_date(v, &rc->start, &why) != 0) {
			report_hint(ld, config_setting_get_member(grp, "start"), "chatops.oncall.start",
				    strbuf_str(&why), rotation_keys[RK_START].expected);
			src->bad[RK_START] = true;
		}
		strbuf_free(&why);
	}

	s = config_setting_get_member(grp, "overrides");
	if (s)
		load_overrides(ld, s, rc, src);
}

/* chatops.topic_note: one line under the bridge's part of each route room's topic. A topic
 * is shown in one line by most clients: more than a short line is for the workflow text. */
static void load_topic_note(struct loader *ld, const config_setting_t *grp, struct config_chatops *co)
{
	const char *v = NULL;
	if (!get_string(ld, grp, "chatops", "topic_note", &v) || !v)
		return;
	const char *why = NULL;
	if (!*v)
		why = "empty";
	else if (strlen(v) > 200)
		why = "longer than 200 bytes";
	else if (!utf8_valid(v))
		why = "not valid UTF-8";
	for (const char *p = v; !why && *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			why = *p == '\n' ? "more than one line" : "contains control characters";
	if (why) {
		struct strbuf sb = STRBUF_INIT;
		report(ld, config_setting_get_member(grp, "topic_note"),
		       "chatops.topic_note: bad value %s (%s; expected one line of at most 200 bytes)", shown(&sb, v), why);
		strbuf_free(&sb);
		return;
	}
	free(co->topic_note);
	co->topic_note = xstrdup(v);
}

/* The room side is on unless turned off: the quiet room is what the bridge is for. */
static void chatops_defaults(struct config_chatops *co)
{
	co->enabled = true;
	co->claims = true;
	co->commands = true;
	co->claim_reaction = xstrdup("\xf0\x9f\x91\x80");  /* U+1F440 EYES */
	co->resolve_reaction = xstrdup("\xe2\x9c\x85");    /* U+2705 WHITE HEAVY CHECK MARK */
	co->command_prefix = xstrdup("!zuul");
	co->command_power_level = 50;
	co->threads = true;
	co->rotation.escalate_after_s = 3600;
	co->catch_up_after_s = 600;
	co->topic = true;
}

static void load_chatops(struct loader *ld, const config_setting_t *grp, struct config_chatops *co)
{
	const char *pfx = "chatops";
	struct rotation_config *rc = &co->rotation;
	struct rotation_src src = {.chatops = grp};
	co->configured = true;
	check_keys(ld, grp, pfx, chatops_keys);
	get_bool(ld, grp, pfx, "enabled", &co->enabled);
	get_bool(ld, grp, pfx, "claims", &co->claims);
	get_bool(ld, grp, pfx, "commands", &co->commands);
	get_chatops_word(ld, grp, "claim_reaction", "a reaction key such as \"\xf0\x9f\x91\x80\"",
			 &co->claim_reaction);
	get_chatops_word(ld, grp, "resolve_reaction", "a reaction key such as \"\xe2\x9c\x85\"",
			 &co->resolve_reaction);
	get_chatops_word(ld, grp, "command_prefix", "one word such as \"!zuul\"", &co->command_prefix);
	if (same_reaction(co->claim_reaction, co->resolve_reaction))
		report(ld, config_setting_get_member(grp, "resolve_reaction") ? config_setting_get_member(grp, "resolve_reaction") : grp,
		       "chatops.resolve_reaction: the same as claim_reaction \"%s\" (expected two different "
		       "reactions)", co->claim_reaction);
	get_int(ld, grp, pfx, "command_power_level", 0, INT_MAX, &co->command_power_level);
	get_bool(ld, grp, pfx, "threads", &co->threads);

	if (!get_duration(ld, grp, pfx, "escalate_after", 0, 30LL * 86400, &rc->escalate_after_s))
		src.bad[RK_ESCALATE_AFTER] = true;
	const config_setting_t *s = config_setting_get_member(grp, "fallback");
	if (s && !get_string_list(ld, s, "chatops.fallback", true, &rc->fallback, &rc->n_fallback))
		src.bad[RK_FALLBACK] = true;
	/* The default interval only makes sense with someone to ping. */
	rc->fallback_after_s = rc->n_fallback > 0 || src.bad[RK_FALLBACK] ? 3600 : 0;
	if (!get_duration(ld, grp, pfx, "fallback_after", 0, 30LL * 86400, &rc->fallback_after_s))
		src.bad[RK_FALLBACK_AFTER] = true;
	if (src.bad[RK_FALLBACK] || src.bad[RK_FALLBACK_AFTER])
		src.bad[RK_FALLBACK] = src.bad[RK_FALLBACK_AFTER] = true;

	load_workflow(ld, grp, co);
	get_duration(ld, grp, pfx, "catch_up_after", 0, 30LL * 86400, &co->catch_up_after_s);
	get_bool(ld, grp, pfx, "topic", &co->topic);
	load_topic_note(ld, grp, co);

	src.oncall = get_group(ld, grp, pfx, "oncall");
	if (src.oncall) {
		co->oncall = true;
		load_oncall(ld, src.oncall, rc, &src);
	}
	struct strbuf problems = STRBUF_INIT;
	if (rotation_check(rc, &problems) > 0)
		report_rotation_problems(ld, &src, strbuf_str(&problems));
	strbuf_free(&problems);
	free(src.bad_override);
}

/* "HH:MM" (24-hour; a one-digit hour is accepted) as minutes after midnight, or -1. */
static int parse_time_of_day(const char *v)
{
#define DIGIT(c) ((c) >= '0' && (c) <= '9')
	if (!DIGIT(v[0]))
		return -1;
	int h = v[0] - '0';
	size_t i = 1;
	if (DIGIT(v[1]))
		h = h * 10 + (v[i++] - '0');
	if (v[i] != ':' || !DIGIT(v[i + 1]) || !DIGIT(v[i + 2]) || v[i + 3] != '\0')
		return -1;
	int m = (v[i + 1] - '0') * 10 + (v[i + 2] - '0');
#undef DIGIT
	return h > 23 || m > 59 ? -1 : h * 60 + m;
}

/* digest_at and digest_timezone of route s (rco->digest_timezone holds the default). */
static void load_digest(struct loader *ld, const config_setting_t *s, const char *pfx,
			const struct config_chatops *co, struct config_route_chatops *rco)
{
	const config_setting_t *at = config_setting_get_member(s, "digest_at");
	const config_setting_t *tz = config_setting_get_member(s, "digest_timezone");
	struct strbuf sb = STRBUF_INIT;
	const char *v = NULL;
	if (at && get_string(ld, s, pfx, "digest_at", &v)) {
		int minute = parse_time_of_day(v);
		if (minute < 0)
			report(ld, at, "%s.digest_at: bad time %s (expected HH:MM, 24-hour, 00:00 to 23:59)", pfx,
			       shown(&sb, v));
		else
			rco->digest_minute = minute;
		/* The digest lists the failures chatops tracks; without it there is nothing to list. */
		if (!co->enabled)
			report(ld, at, "%s.digest_at: set, but chatops.enabled is false (expected the room side "
			       "on, which tracks the open failures the digest lists)", pfx);
	}
	v = NULL;
	if (tz && get_string(ld, s, pfx, "digest_timezone", &v)) {
		if (!at)
			report(ld, tz, "%s.digest_timezone: set without digest_at (expected digest_at = \"HH:MM\"; "
			       "too, or no digest_timezone)", pfx);
		else if (!rotation_zone_exists(v))
			report(ld, tz, "%s.digest_timezone: %s is not a zone of the system tz database (e.g. "
			       "Europe/Berlin, UTC)", pfx, shown(&sb, v));
		else {
			free(rco->digest_timezone);
			rco->digest_timezone = xstrdup(v);
		}
	}
	strbuf_free(&sb);
}

/* The chatops group, then each route's chatops keys (mention_oncall depends on the group). */
void load_chatops_all(struct loader *ld, const config_setting_t *root, struct config *cfg)
{
	chatops_defaults(&cfg->chatops);
	const config_setting_t *grp = get_group(ld, root, NULL, "chatops");
	if (grp)
		load_chatops(ld, grp, &cfg->chatops);
	const config_setting_t *rs = config_setting_get_member(root, "routes");
	if (cfg->n_routes == 0 || !rs)
		return;
	cfg->route_chatops = xcalloc(cfg->n_routes, sizeof(*cfg->route_chatops));
	/* Whom a failure mentions: its owners, else the on-call; either makes mentioning useful
	 * (the owners list itself is checked by load_owners). */
	const config_setting_t *owners = config_setting_get_member(root, "owners");
	bool someone = cfg->chatops.oncall || (owners && config_setting_length(owners) > 0);
	for (size_t i = 0; i < cfg->n_routes; i++) {
		const config_setting_t *s = config_setting_get_elem(rs, (unsigned)i);
		struct config_route_chatops *rco = &cfg->route_chatops[i];
		rco->mention_oncall = someone;
		rco->digest_minute = -1;
		rco->digest_timezone = xstrdup(cfg->chatops.oncall && cfg->chatops.rotation.timezone
						       ? cfg->chatops.rotation.timezone : "UTC");
		if (!s || config_setting_type(s) != CONFIG_TYPE_GROUP)
			continue;
		char pfx[48];
		snprintf(pfx, sizeof pfx, "routes[%zu]", i);
		get_bool(ld, s, pfx, "edit_start", &rco->edit_start);
		bool mention = rco->mention_oncall;
		const config_setting_t *ms = config_setting_get_member(s, "mention_oncall");
		if (ms && get_bool(ld, s, pfx, "mention_oncall", &mention)) {
			if (mention && !someone)
				report(ld, ms, "%s.mention_oncall: true, but there is no rotation and no owners "
					       "(expected a chatops.oncall group or owners rules that say whom to "
					       "mention)", pfx);
			else
				rco->mention_oncall = mention;
		}
		get_runbook(ld, s, pfx, &rco->runbook);
		get_hint(ld, s, pfx, &rco->hint);
		load_digest(ld, s, pfx, &cfg->chatops, rco);
	}
}

const struct config_route_chatops *config_route_chatops(const struct config *cfg, const struct route *r)
{
	static const struct config_route_chatops none = {.digest_minute = -1, .digest_timezone = "UTC"};
	if (!cfg || !cfg->route_chatops || !r || r < cfg->routes || r >= cfg->routes + cfg->n_routes)
		return &none;
	return &cfg->route_chatops[r - cfg->routes];
}
