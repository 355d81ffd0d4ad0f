/* chatops_commands: room commands and their replies (help, oncall, claims, status, mute,
 * unmute, owners, workflow, flaky), and the mutes they set. */
#include "chatops_internal.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "command_budget.h"
#include "commands.h"
#include "duration.h"
#include "log.h"
#include "relations.h"
#include "rotation.h"
#include "strbuf.h"
#include "textutil.h"

/* ---- mutes ---------------------------------------------------------------- */

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

void chatops_mute_clear(struct mute *m)
{
	free(m->room);
	free(m->project);
	free(m->job);
}

static void mutes_save(struct chatops *c)
{
	cJSON *list = cJSON_CreateArray();
	for (size_t i = 0; i < c->n_mutes; i++) {
		const struct mute *m = &c->mutes[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "room", m->room);
		cJSON_AddStringToObject(o, "project", m->project);
		if (m->job)
			cJSON_AddStringToObject(o, "job", m->job);
		cJSON_AddNumberToObject(o, "until_ms", (double)m->until_ms);
		cJSON_AddNumberToObject(o, "count", (double)m->count);
		cJSON_AddItemToArray(list, o);
	}
	char *json = cJSON_PrintUnformatted(list);
	c->host.kv_set(KV_MUTES, json, c->host.data);
	cJSON_free(json);
	cJSON_Delete(list);
}

void chatops_mutes_load(struct chatops *c)
{
	char *json = c->host.kv_get(KV_MUTES, c->host.data);
	cJSON *list = json ? cJSON_Parse(json) : NULL;
	free(json);
	const cJSON *o;
	cJSON_ArrayForEach(o, list)
	{
		const cJSON *until = cJSON_GetObjectItemCaseSensitive(o, "until_ms");
		const cJSON *count = cJSON_GetObjectItemCaseSensitive(o, "count");
		if (!chatops_str_at(o, "room") || !chatops_str_at(o, "project") || !cJSON_IsNumber(until))
			continue;
		c->mutes = xrealloc(c->mutes, (c->n_mutes + 1) * sizeof *c->mutes);
		c->mutes[c->n_mutes++] = (struct mute){
			.room = xstrdup(chatops_str_at(o, "room")),
			.project = xstrdup(chatops_str_at(o, "project")),
			.job = xstrdup(chatops_str_at(o, "job")),
			.until_ms = (int64_t)until->valuedouble,
			.count = cJSON_IsNumber(count) ? (long long)count->valuedouble : 0,
		};
	}
	cJSON_Delete(list);
}

static struct mute *mute_find(struct chatops *c, const char *room, const char *project, const char *job)
{
	for (size_t i = 0; i < c->n_mutes; i++)
		if (same_str(c->mutes[i].room, room) && same_str(c->mutes[i].project, project) &&
		    same_str(c->mutes[i].job, job))
			return &c->mutes[i];
	return NULL;
}

static void mute_remove(struct chatops *c, struct mute *m)
{
	chatops_mute_clear(m);
	size_t i = (size_t)(m - c->mutes);
	memmove(m, m + 1, (c->n_mutes - i - 1) * sizeof *m);
	c->n_mutes--;
}

static void mute_describe(const char *project, const char *job, struct strbuf *out)
{
	strbuf_puts(out, project);
	if (job)
		strbuf_printf(out, " (job %s)", job);
}


/* The live mute that covers failed build b of ev in room: its project's (the project of
 * the change it tested: in a dependency cycle, not necessarily the item's first), else
 * its job's. NULL: the build is not muted. */
static struct mute *mute_covering(struct chatops *c, const char *room, const struct zuul_event *ev,
				  const struct zuul_build *b, int64_t now)
{
	const char *project = zuul_build_change(ev, b)->project;
	struct mute *m = project ? mute_find(c, room, project, NULL) : NULL;
	if (!m || m->until_ms <= now)
		m = project && b->job_name ? mute_find(c, room, project, b->job_name) : NULL;
	return m && m->until_ms > now ? m : NULL;
}

/* A report with no failed build (a merge conflict) is muted by its project's mute. */
static struct mute *mute_of_item(struct chatops *c, const char *room, const struct zuul_event *ev, int64_t now)
{
	struct mute *m = ev->item.project ? mute_find(c, room, ev->item.project, NULL) : NULL;
	return m && m->until_ms > now ? m : NULL;
}

int64_t chatops_mute_until(struct chatops *c, const char *room, const struct zuul_event *ev)
{
	if (!c || !chatops_is_failure_action(ev->action))
		return 0;
	int64_t now = clock_wall_ms(), until = 0;
	size_t failed = 0;
	/* Every failed build muted; the report is muted until the first of its mutes ends. */
	for (size_t i = 0; i < ev->n_builds; i++) {
		if (!zuul_build_failed(&ev->builds[i]))
			continue;
		failed++;
		const struct mute *m = mute_covering(c, room, ev, &ev->builds[i], now);
		if (!m)
			return 0;
		if (!until || m->until_ms < until)
			until = m->until_ms;
	}
	if (failed == 0) {
		const struct mute *m = mute_of_item(c, room, ev, now);
		return m ? m->until_ms : 0;
	}
	return until;
}

void chatops_mute_count(struct chatops *c, const char *room, const struct zuul_event *ev)
{
	if (!c)
		return;
	int64_t now = clock_wall_ms();
	/* Each mute counts the report once, however many of its builds it covers. */
	struct mute **counted = xcalloc(ev->n_builds + 1, sizeof *counted);
	size_t n = 0;
	for (size_t i = 0; i <= ev->n_builds; i++) {
		struct mute *m = i < ev->n_builds ? (zuul_build_failed(&ev->builds[i])
							     ? mute_covering(c, room, ev, &ev->builds[i], now)
							     : NULL)
						  : (n == 0 ? mute_of_item(c, room, ev, now) : NULL);
		bool seen = false;
		for (size_t j = 0; m && j < n && !seen; j++)
			seen = counted[j] == m;
		if (m && !seen) {
			m->count++;
			counted[n++] = m;
		}
	}
	free(counted);
	mutes_save(c);
}


static char *command_mute(struct chatops *c, const struct room_state *rs, const struct commands_parsed *p)
{
	struct mute *m = mute_find(c, rs->room, p->project, p->job);
	if (!m) {
		c->mutes = xrealloc(c->mutes, (c->n_mutes + 1) * sizeof *c->mutes);
		m = &c->mutes[c->n_mutes++];
		*m = (struct mute){.room = xstrdup(rs->room), .project = xstrdup(p->project), .job = xstrdup(p->job)};
	}
	m->until_ms = (int64_t)p->until * 1000;
	mutes_save(c);
	struct tm tm;
	time_t until = p->until;
	gmtime_r(&until, &tm);
	char when[40];
	strftime(when, sizeof when, "%a %d %b %H:%M UTC", &tm);
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "Muted failures of ");
	mute_describe(p->project, p->job, &sb);
	strbuf_printf(&sb, " until %s: they are counted, not posted. \"%s unmute %s%s%s\" ends it early.", when,
		      c->cfg->chatops.command_prefix, p->project, p->job ? " " : "", p->job ? p->job : "");
	return strbuf_detach(&sb);
}

static char *command_unmute(struct chatops *c, const struct room_state *rs, const struct commands_parsed *p)
{
	struct strbuf sb = STRBUF_INIT;
	struct mute *m = mute_find(c, rs->room, p->project, p->job);
	if (!m) {
		mute_describe(p->project, p->job, &sb);
		strbuf_puts(&sb, " was not muted in this room.");
		return strbuf_detach(&sb);
	}
	strbuf_puts(&sb, "Unmuted ");
	mute_describe(p->project, p->job, &sb);
	strbuf_printf(&sb, ": %lld failure%s went unposted while it was muted.", m->count, m->count == 1 ? "" : "s");
	mute_remove(c, m);
	mutes_save(c);
	return strbuf_detach(&sb);
}

/* Ends the mutes whose time is up, with a notice in their room. */
void chatops_expire_mutes(struct chatops *c)
{
	int64_t now = clock_wall_ms();
	bool changed = false;
	for (size_t i = 0; i < c->n_mutes;) {
		struct mute *m = &c->mutes[i];
		if (m->until_ms > now) {
			i++;
			continue;
		}
		struct strbuf text = STRBUF_INIT;
		strbuf_puts(&text, "The mute of ");
		mute_describe(m->project, m->job, &text);
		strbuf_printf(&text, " ended: %lld failure%s went unposted while it lasted.", m->count,
			      m->count == 1 ? "" : "s");
		char key[300];
		snprintf(key, sizeof key, "%s|%s|%lld", m->project, m->job ? m->job : "", (long long)m->until_ms);
		cJSON *content = chatops_notice_new(strbuf_str(&text));
		c->host.post(m->room, "mute-end", key, content, c->host.data);
		cJSON_Delete(content);
		log_kv(ZLOG_INFO, "mute ended", "room", m->room, "project", m->project, "job", m->job, NULL);
		strbuf_free(&text);
		mute_remove(c, m);
		changed = true;
	}
	if (changed)
		mutes_save(c);
}

/* ---- the `claims` command ------------------------------------------------------ */


/* "project (branch) pipeline: job, job" from a thread key "project|branch|pipeline|jobs". */
void chatops_describe_thread_key(const char *tkey, struct strbuf *out)
{
	char *copy = xstrdup(tkey);
	char *part[4] = {copy, "", "", ""};
	for (int i = 1; i < 4; i++) {
		char *bar = strchr(part[i - 1], '|');
		if (!bar)
			break;
		*bar = '\0';
		part[i] = bar + 1;
	}
	strbuf_puts(out, *part[0] ? part[0] : "(no project)");
	if (*part[1])
		strbuf_printf(out, " (%s)", part[1]);
	if (*part[2])
		strbuf_printf(out, " %s", part[2]);
	if (*part[3])
		strbuf_printf(out, ": %s", part[3]);
	free(copy);
}

/* The open failures of the room, oldest first: what failed, since when, who has it, and a
 * link to the message. Plain text and HTML. */
static cJSON *claims_content(struct chatops *c, const struct room_state *rs)
{
	struct store_failure *open = NULL;
	size_t n = 0;
	if (store_failures_open(c->store, rs->room, &open, &n) != 0)
		return chatops_notice_new("I cannot read the open failures right now (see the bridge's log).");
	if (n == 0) {
		store_failures_free(open, n);
		return chatops_notice_new("No open failures in this room.");
	}
	int64_t now = clock_wall_ms();
	struct strbuf text = STRBUF_INIT, html = STRBUF_INIT;
	strbuf_printf(&text, "Open failures in this room (%zu):", n);
	strbuf_printf(&html, "<p>Open failures in this room (%zu):</p><ul>", n);
	for (size_t i = 0; i < n && i < CLAIMS_LIST_MAX; i++) {
		const struct store_failure *f = &open[i];
		struct strbuf what = STRBUF_INIT;
		chatops_describe_thread_key(f->thread_key, &what);
		char age[32];
		duration_format((double)(now - f->opened_ms) / 1000.0, age, sizeof age);
		char **claimers = NULL;
		size_t n_claim = 0;
		store_claims_of(c->store, f->txn_id, "claim", &claimers, &n_claim);
		struct strbuf who_text = STRBUF_INIT, who_html = STRBUF_INIT;
		if (n_claim)
			chatops_list_users(claimers, n_claim, &who_html, &who_text);
		chatops_free_users(claimers, n_claim);
		char times[48] = "";
		if (f->count > 1)
			snprintf(times, sizeof times, ", failed %lld times", (long long)f->count);
		strbuf_printf(&text, "\n- %s: open %s%s, %s%s", strbuf_str(&what), age, times,
			      n_claim ? "claimed by " : "unclaimed", strbuf_str(&who_text));
		strbuf_puts(&html, "<li>");
		if (f->event_id) {
			/* A matrix.to link to the message itself. */
			struct strbuf link = STRBUF_INIT;
			textutil_matrix_to_event(&link, rs->room_id, f->event_id);
			strbuf_printf(&text, " %s", strbuf_str(&link));
			strbuf_printf(&html, "<a href=\"%s\">", strbuf_str(&link));
			strbuf_puts_html(&html, strbuf_str(&what));
			strbuf_puts(&html, "</a>");
			strbuf_free(&link);
		} else {
			strbuf_puts_html(&html, strbuf_str(&what));
		}
		strbuf_printf(&html, ": open %s%s, ", age, times);
		if (n_claim) {
			strbuf_puts(&html, "claimed by ");
			strbuf_puts(&html, strbuf_str(&who_html));
		} else {
			strbuf_puts(&html, "<b>unclaimed</b>");
		}
		strbuf_puts(&html, "</li>");
		strbuf_free(&what);
		strbuf_free(&who_text);
		strbuf_free(&who_html);
	}
	strbuf_puts(&html, "</ul>");
	if (n > CLAIMS_LIST_MAX) {
		strbuf_printf(&text, "\n... and %zu more.", n - CLAIMS_LIST_MAX);
		strbuf_printf(&html, "<p>... and %zu more.</p>", n - CLAIMS_LIST_MAX);
	}
	cJSON *content = chatops_notice_new(strbuf_str(&text));
	cJSON_AddStringToObject(content, "format", "org.matrix.custom.html");
	cJSON_AddStringToObject(content, "formatted_body", strbuf_str(&html));
	strbuf_free(&text);
	strbuf_free(&html);
	store_failures_free(open, n);
	return content;
}

/* Answers in the command's thread when it was in one, else as a reply to it. */
static void reply_content(struct chatops *c, const struct room_state *rs, const struct sync_event *ev, cJSON *content)
{
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev->event, "content"),
							   "m.relates_to");
	const char *root = chatops_str_at(rel, "rel_type") && strcmp(chatops_str_at(rel, "rel_type"), "m.thread") == 0
				   ? chatops_str_at(rel, "event_id")
				   : NULL;
	if (root) {
		relations_make_thread_reply(content, root, ev->event_id);
	} else {
		cJSON *r = cJSON_AddObjectToObject(content, "m.relates_to");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "m.in_reply_to"), "event_id", ev->event_id);
	}
	/* The command's event id makes the reply's identity: a batch /sync delivers again
	 * after a crash is answered once. Kind "reply" is what the deliverer knows answers by
	 * (DELIVER_ANSWER_ACTION): they go out after the room's waiting reports. */
	if (c->host.post(rs->room, "reply", ev->event_id, content, c->host.data) != 0)
		log_kv(ZLOG_ERROR, "cannot queue a command reply", "room", rs->room, "event_id", ev->event_id, NULL);
	cJSON_Delete(content);
}

static void reply(struct chatops *c, const struct room_state *rs, const struct sync_event *ev, const char *text)
{
	/* Help and friends end their last line with a newline; a chat message does not. */
	char *trimmed = xstrdup(text);
	size_t len = strlen(trimmed);
	while (len && (trimmed[len - 1] == '\n' || trimmed[len - 1] == ' '))
		trimmed[--len] = '\0';
	reply_content(c, rs, ev, chatops_notice_new(trimmed));
	free(trimmed);
}

/* Whether the command gets carried out and answered: a flood of commands (a script, a
 * stuck client, a member without power repeating "help") must not fill the room, nor the
 * homeserver's rate limit that the failure reports share. Past the budget the command is
 * neither carried out nor answered, so its sender notices and asks again a minute later;
 * the silence is logged once per member and minute, and counted. */
static bool answer_budgeted(struct chatops *c, const struct room_state *rs, const struct sync_event *ev,
			    enum commands_verb verb)
{
	if (!c->answer_budget)
		c->answer_budget = command_budget_new(NULL);
	bool first_silence;
	enum command_budget_verdict v =
		command_budget_take(c->answer_budget, rs->room, ev->sender, clock_wall_ms(), &first_silence);
	if (v == COMMAND_BUDGET_ANSWER)
		return true;
	char per_member[16], per_room[16];
	snprintf(per_member, sizeof per_member, "%d", COMMAND_BUDGET_PER_MEMBER);
	snprintf(per_room, sizeof per_room, "%d", COMMAND_BUDGET_PER_ROOM);
	log_kv(first_silence ? ZLOG_WARN : ZLOG_DEBUG,
	       "room commands over budget; not answered until the minute is over (counted in "
	       "zmb_command_answers_dropped_total)",
	       "room", rs->room, "sender", ev->sender, "spent", command_budget_verdict_name(v), "per_member",
	       per_member, "per_room", per_room, "command", commands_verb_name(verb), "event_id", ev->event_id,
	       NULL);
	if (c->host.answer_dropped)
		c->host.answer_dropped(c->host.data);
	return false;
}

void chatops_handle_command(struct chatops *c, struct room_state *rs, const struct sync_event *ev, const char *body)
{
	const struct config_chatops *co = &c->cfg->chatops;
	time_t now = (time_t)(clock_wall_ms() / 1000);
	struct commands_parsed p;
	enum commands_verb verb = commands_parse(body, co->command_prefix, now, &p);
	if (verb == COMMANDS_NONE || !answer_budgeted(c, rs, ev, verb)) {
		commands_parsed_clear(&p);
		return;
	}
	log_kv(ZLOG_INFO, "room command", "room", rs->room, "sender", ev->sender, "command", commands_verb_name(verb),
	       "event_id", ev->event_id, NULL);
	long long level = commands_creator_outranks(rs->create_content, rs->creator, ev->sender)
				  ? LLONG_MAX
				  : commands_user_level(rs->power_levels, ev->sender, rs->creator);
	if (verb >= COMMANDS_RECHECK && verb <= COMMANDS_AUTOHOLD_DELETE) {
		/* Acting on Zuul checks the tenant's users too, and answers in the failure's thread. */
		chatops_actions_command(c, rs, ev, &p, level);
		commands_parsed_clear(&p);
		return;
	}
	char *text = NULL;
	if (verb == COMMANDS_INVALID) {
		text = xstrdup(p.error ? p.error : "I did not understand that.");
	} else if (!commands_allowed(level, co->command_power_level)) {
		text = commands_refusal(co->command_prefix, level, co->command_power_level);
	} else {
		switch (verb) {
		case COMMANDS_HELP:
			text = commands_help(co->command_prefix, co->command_power_level, c->cfg->actions.enabled);
			break;
		case COMMANDS_ONCALL:
			text = co->oncall ? rotation_describe(&co->rotation, now)
					  : xstrdup("No on-call rotation is configured (chatops.oncall).");
			break;
		case COMMANDS_STATUS: {
			struct strbuf sb = STRBUF_INIT;
			c->host.describe_status(&sb, c->host.data);
			text = strbuf_detach(&sb);
			break;
		}
		case COMMANDS_MUTE:
			text = command_mute(c, rs, &p);
			break;
		case COMMANDS_UNMUTE:
			text = command_unmute(c, rs, &p);
			break;
		case COMMANDS_CLAIMS:
			reply_content(c, rs, ev, claims_content(c, rs));
			commands_parsed_clear(&p);
			return;
		case COMMANDS_OWNERS: {
			struct owners_subject subj = {.project = p.project, .job = p.job};
			text = owners_describe(&c->cfg->owners, &subj);
			break;
		}
		case COMMANDS_WORKFLOW:
			text = xstrdup(co->workflow ? co->workflow
						    : "No workflow is configured for this room (chatops.workflow).");
			break;
		case COMMANDS_FLAKY:
			reply_content(c, rs, ev, chatops_flaky_content(c, rs, p.project));
			commands_parsed_clear(&p);
			return;
		default:
			text = xstrdup("I know that command but cannot answer it here.");
			break;
		}
	}
	reply(c, rs, ev, text ? text : "");
	free(text);
	commands_parsed_clear(&p);
}
