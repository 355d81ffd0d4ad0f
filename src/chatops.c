/* chatops: /sync events -> room commands and their replies; a clock tick -> on-call
 * handover notices. Claims and failure threads build on this (see docs/design.md). */
#include "chatops.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "commands.h"
#include "digest.h"
#include "duration.h"
#include "log.h"
#include "matrix.h"
#include "rebuild.h"
#include "relations.h"
#include "rotation.h"
#include "strbuf.h"
#include "sync.h"

#define KV_SYNC_TOKEN "sync.next_batch"
#define KV_LAST_HANDOVER "oncall.last_handover"
#define KV_MUTES "chatops.mutes"
#define KV_INCIDENTS "triage.incidents"
/* The bridge's heartbeat (wall ms), written every HEARTBEAT_MS: at start-up, an old one
 * says how long the bridge was away. */
#define KV_ALIVE "bridge.alive_ms"
#define HEARTBEAT_MS 60000
/* The catch-up in progress: {"away_since": ms, "reports": [...], "skip": {txn: ms}}. */
#define KV_CATCHUP "catchup.state"
/* How long a summarised message stays in the skip set: its replies and edits queue
 * within seconds, and the set must not grow forever. */
#define CATCHUP_SKIP_KEEP_MS (24LL * 3600 * 1000)
/* The private content key that marks a failure message and carries its state, so the
 * claims can be rebuilt from the room when state_dir is lost (see rebuild.h). */
#define FAILURE_MARKER "zmb.failure"
/* `claims` lists at most this many open failures; the rest are counted. */
#define CLAIMS_LIST_MAX 20

/* A `mute`: failures of project (or of one job) in room are counted, not posted. Mutes
 * are few and small, so they live as one JSON value in the store's key-value table. */
struct mute {
	char *room;    /* configured name */
	char *project;
	char *job;     /* NULL: every job */
	int64_t until_ms;
	long long count;
};

/* What /sync told us about a room's state: who may command, and who created it. */
struct room_state {
	char *room;          /* configured name */
	char *room_id;
	cJSON *power_levels; /* content of m.room.power_levels, or NULL */
	char *creator;
};

struct chatops {
	struct loop *loop;
	const struct config *conn;
	const struct config *cfg;
	char *user_id;
	struct chatops_host host;
	struct store *store;
	struct sync *sync;
	struct rebuild *rebuild;   /* reading claims back from the rooms; /sync waits for it */
	struct room_state *rooms;
	size_t n_rooms;
	uint64_t tick_timer;
	struct mute *mutes;
	size_t n_mutes;
	/* Wall time of the next escalation step due; 0: look again at the next tick (a new
	 * failure, a claim taken back or a reload may have moved it). */
	int64_t next_escalation_ms;
	struct incident_tracker *incidents; /* NULL without a triage group */
	int64_t alive_written_ms;
	/* The catch-up (see chatops_away_begin): away_since (0: not away), the summarised
	 * reports, and the txns of messages the summary replaces. Persisted as KV_CATCHUP. */
	int64_t away_since_ms;
	cJSON *catchup;
};

static const char *const event_types[] = {"m.room.message", "m.room.power_levels", "m.room.create", "m.reaction",
					  "m.room.redaction"};

static struct room_state *room_by_id(struct chatops *c, const char *room_id)
{
	for (size_t i = 0; room_id && i < c->n_rooms; i++)
		if (strcmp(c->rooms[i].room_id, room_id) == 0)
			return &c->rooms[i];
	return NULL;
}

static const char *str_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- replies ------------------------------------------------------------ */

/* An m.notice that pings nobody (m.mentions empty): replies only repeat checked words. */
static cJSON *notice_new(const char *text)
{
	cJSON *content = cJSON_CreateObject();
	cJSON_AddStringToObject(content, "msgtype", "m.notice");
	cJSON_AddStringToObject(content, "body", text);
	cJSON_AddItemToObject(content, "m.mentions", cJSON_CreateObject());
	return content;
}

/* ---- mutes ---------------------------------------------------------------- */

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void mute_clear(struct mute *m)
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

static void mutes_load(struct chatops *c)
{
	char *json = c->host.kv_get(KV_MUTES, c->host.data);
	cJSON *list = json ? cJSON_Parse(json) : NULL;
	free(json);
	const cJSON *o;
	cJSON_ArrayForEach(o, list)
	{
		const cJSON *until = cJSON_GetObjectItemCaseSensitive(o, "until_ms");
		const cJSON *count = cJSON_GetObjectItemCaseSensitive(o, "count");
		if (!str_at(o, "room") || !str_at(o, "project") || !cJSON_IsNumber(until))
			continue;
		c->mutes = xrealloc(c->mutes, (c->n_mutes + 1) * sizeof *c->mutes);
		c->mutes[c->n_mutes++] = (struct mute){
			.room = xstrdup(str_at(o, "room")),
			.project = xstrdup(str_at(o, "project")),
			.job = xstrdup(str_at(o, "job")),
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
	mute_clear(m);
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

/* Actions that report a problem: the ones a mute silences. */
static bool is_failure_action(const char *action)
{
	static const char *const failures[] = {"failure", "merge-conflict", "merge-failure", "config-error"};
	for (size_t i = 0; action && i < sizeof failures / sizeof failures[0]; i++)
		if (strcmp(action, failures[i]) == 0)
			return true;
	return false;
}

/* A build that ended in something other than success or a neutral outcome. */
static bool build_failed(const struct zuul_build *b)
{
	static const char *const fine[] = {"SUCCESS", "SKIPPED", "ABORTED", "CANCELED", "RETRY"};
	if (!b->result)
		return false;
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
		if (strcmp(b->result, fine[i]) == 0)
			return false;
	return true;
}

bool chatops_muted(struct chatops *c, const char *room, const struct zuul_event *ev)
{
	if (!c || !ev->item.project || !is_failure_action(ev->action))
		return false;
	int64_t now = clock_wall_ms();
	struct mute *whole = mute_find(c, room, ev->item.project, NULL);
	if (whole && whole->until_ms > now) {
		whole->count++;
		mutes_save(c);
		return true;
	}
	size_t failed = 0;
	for (size_t i = 0; i < ev->n_builds; i++) {
		const struct zuul_build *b = &ev->builds[i];
		if (!build_failed(b))
			continue;
		failed++;
		struct mute *m = b->job_name ? mute_find(c, room, ev->item.project, b->job_name) : NULL;
		if (!m || m->until_ms <= now)
			return false;
	}
	if (failed == 0)
		return false;
	for (size_t i = 0; i < ev->n_builds; i++)
		if (build_failed(&ev->builds[i]))
			mute_find(c, room, ev->item.project, ev->builds[i].job_name)->count++;
	mutes_save(c);
	return true;
}

void chatops_find_owners(const struct config *cfg, const struct zuul_event *ev, struct chatops_owners *out)
{
	out->n = 0;
	if (!cfg->owners.n_rules || !is_failure_action(ev->action))
		return;
	struct owners_subject subj = {.tenant = ev->tenant, .pipeline = ev->pipeline, .project = ev->item.project};
	size_t failed = 0;
	for (size_t i = 0; i <= ev->n_builds && out->n < CHATOPS_OWNERS_MAX; i++) {
		if (i < ev->n_builds) {
			if (!build_failed(&ev->builds[i]))
				continue;
			failed++;
			subj.job = ev->builds[i].job_name;
		} else if (failed) {
			break;
		} else {
			subj.job = NULL; /* nothing failed by itself: the report as a whole */
		}
		int k = owners_match(&cfg->owners, &subj, NULL);
		if (k < 0)
			continue;
		const struct owners_rule *r = &cfg->owners.rules[k];
		size_t j = 0;
		while (j < out->n && out->rules[j] != r)
			j++;
		if (j == out->n)
			out->rules[out->n++] = r;
	}
}

void chatops_what_to_do(const struct config *cfg, const struct route *r, const struct chatops_owners *owners,
			const char **runbook, const char **hint)
{
	const struct config_route_chatops *rco = config_route_chatops(cfg, r);
	*runbook = rco->runbook;
	*hint = rco->hint;
	/* The first failed job's rule speaks first: walk backwards so it is set last. */
	for (size_t k = owners ? owners->n : 0; k-- > 0;) {
		if (owners->rules[k]->runbook)
			*runbook = owners->rules[k]->runbook;
		if (owners->rules[k]->hint)
			*hint = owners->rules[k]->hint;
	}
}

void chatops_mention(struct chatops *c, const struct zuul_event *ev, const struct chatops_owners *owners,
		     cJSON *content)
{
	if (!c || !is_failure_action(ev->action))
		return;
	size_t n_users = 0;
	for (size_t i = 0; owners && i < owners->n; i++)
		n_users += owners->rules[i]->n_users;
	if (n_users) {
		const char **users = xcalloc(n_users, sizeof *users);
		size_t n = 0;
		for (size_t i = 0; i < owners->n; i++)
			for (size_t j = 0; j < owners->rules[i]->n_users; j++)
				users[n++] = owners->rules[i]->users[j];
		relations_add_mentions(content, users, n);
		free(users);
		return;
	}
	if (!c->cfg->chatops.oncall)
		return;
	struct rotation_oncall oc;
	if (rotation_oncall(&c->cfg->chatops.rotation, (time_t)(clock_wall_ms() / 1000), &oc) == 0 && oc.user)
		relations_add_mentions(content, &oc.user, 1);
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
static void expire_mutes(struct chatops *c)
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
		cJSON *content = notice_new(strbuf_str(&text));
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

static void free_users(char **users, size_t n);
static void list_users(char **users, size_t n, struct strbuf *html, struct strbuf *text);

/* "project (branch) pipeline: job, job" from a thread key "project|branch|pipeline|jobs". */
static void describe_thread_key(const char *tkey, struct strbuf *out)
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
		return notice_new("I cannot read the open failures right now (see the bridge's log).");
	if (n == 0) {
		store_failures_free(open, n);
		return notice_new("No open failures in this room.");
	}
	int64_t now = clock_wall_ms();
	struct strbuf text = STRBUF_INIT, html = STRBUF_INIT;
	strbuf_printf(&text, "Open failures in this room (%zu):", n);
	strbuf_printf(&html, "<p>Open failures in this room (%zu):</p><ul>", n);
	for (size_t i = 0; i < n && i < CLAIMS_LIST_MAX; i++) {
		const struct store_failure *f = &open[i];
		struct strbuf what = STRBUF_INIT;
		describe_thread_key(f->thread_key, &what);
		char age[32];
		duration_format((double)(now - f->opened_ms) / 1000.0, age, sizeof age);
		char **claimers = NULL;
		size_t n_claim = 0;
		store_claims_of(c->store, f->txn_id, "claim", &claimers, &n_claim);
		struct strbuf who_text = STRBUF_INIT, who_html = STRBUF_INIT;
		if (n_claim)
			list_users(claimers, n_claim, &who_html, &who_text);
		free_users(claimers, n_claim);
		char times[48] = "";
		if (f->count > 1)
			snprintf(times, sizeof times, ", failed %lld times", (long long)f->count);
		strbuf_printf(&text, "\n- %s: open %s%s, %s%s", strbuf_str(&what), age, times,
			      n_claim ? "claimed by " : "unclaimed", strbuf_str(&who_text));
		strbuf_puts(&html, "<li>");
		if (f->event_id) {
			/* A matrix.to link to the message itself; ids are percent-encoded. */
			char *room = matrix_escape_segment(rs->room_id), *event = matrix_escape_segment(f->event_id);
			strbuf_printf(&text, " https://matrix.to/#/%s/%s", room, event);
			strbuf_printf(&html, "<a href=\"https://matrix.to/#/%s/%s\">", room, event);
			strbuf_puts_html(&html, strbuf_str(&what));
			strbuf_puts(&html, "</a>");
			free(room);
			free(event);
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
	cJSON *content = notice_new(strbuf_str(&text));
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
	const char *root = str_at(rel, "rel_type") && strcmp(str_at(rel, "rel_type"), "m.thread") == 0
				   ? str_at(rel, "event_id")
				   : NULL;
	if (root) {
		relations_make_thread_reply(content, root, ev->event_id);
	} else {
		cJSON *r = cJSON_AddObjectToObject(content, "m.relates_to");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "m.in_reply_to"), "event_id", ev->event_id);
	}
	/* The command's event id makes the reply's identity: a batch /sync delivers again
	 * after a crash is answered once. */
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
	reply_content(c, rs, ev, notice_new(trimmed));
	free(trimmed);
}

static void handle_command(struct chatops *c, struct room_state *rs, const struct sync_event *ev, const char *body)
{
	const struct config_chatops *co = &c->cfg->chatops;
	time_t now = (time_t)(clock_wall_ms() / 1000);
	struct commands_parsed p;
	enum commands_verb verb = commands_parse(body, co->command_prefix, now, &p);
	if (verb == COMMANDS_NONE) {
		commands_parsed_clear(&p);
		return;
	}
	log_kv(ZLOG_INFO, "room command", "room", rs->room, "sender", ev->sender, "command", commands_verb_name(verb),
	       "event_id", ev->event_id, NULL);
	long long level = commands_user_level(rs->power_levels, ev->sender, rs->creator);
	char *text = NULL;
	if (verb == COMMANDS_INVALID) {
		text = xstrdup(p.error ? p.error : "I did not understand that.");
	} else if (!commands_allowed(level, co->command_power_level)) {
		text = commands_refusal(co->command_prefix, level, co->command_power_level);
	} else {
		switch (verb) {
		case COMMANDS_HELP:
			text = commands_help(co->command_prefix, co->command_power_level);
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
		default:
			text = xstrdup("I know that command but cannot answer it here.");
			break;
		}
	}
	reply(c, rs, ev, text ? text : "");
	free(text);
	commands_parsed_clear(&p);
}

/* ---- claims ---------------------------------------------------------------- */

/* "project|branch|pipeline|" : the part of a thread key a success recovers. */
static void thread_prefix(const struct zuul_event *ev, struct strbuf *out)
{
	strbuf_printf(out, "%s|%s|%s|", ev->item.project ? ev->item.project : "", ev->item.branch ? ev->item.branch : "",
		      ev->pipeline ? ev->pipeline : "");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The prefix plus the sorted names of the failed jobs: repeats of the same failure share
 * it, a failure of other jobs does not. Caller frees. */
static char *thread_key(const struct zuul_event *ev)
{
	struct strbuf sb = STRBUF_INIT;
	thread_prefix(ev, &sb);
	const char **jobs = xcalloc(ev->n_builds ? ev->n_builds : 1, sizeof *jobs);
	size_t n = 0;
	for (size_t i = 0; i < ev->n_builds; i++)
		if (build_failed(&ev->builds[i]))
			jobs[n++] = ev->builds[i].job_name ? ev->builds[i].job_name : "";
	qsort(jobs, n, sizeof *jobs, cmp_str);
	for (size_t i = 0; i < n; i++)
		strbuf_printf(&sb, "%s%s", i ? "," : "", jobs[i]);
	free(jobs);
	return strbuf_detach(&sb);
}

char *chatops_repeat_of(struct chatops *c, const char *route, const struct zuul_event *ev)
{
	if (!c || !c->cfg->chatops.threads || !is_failure_action(ev->action))
		return NULL;
	char *key = thread_key(ev);
	struct store_failure f;
	char *root = NULL;
	if (store_failure_open_by_key(c->store, route, key, &f) == 1) {
		root = f.txn_id;
		f.txn_id = NULL;
	}
	store_failure_clear(&f);
	free(key);
	return root;
}

void chatops_mark_failure(struct chatops *c, const struct zuul_event *ev, const char *txn, const char *route,
			  const char *key, const struct chatops_owners *owners, cJSON *content)
{
	if (!c || !is_failure_action(ev->action))
		return;
	char *tkey = thread_key(ev);
	cJSON *m = cJSON_CreateObject();
	cJSON_AddNumberToObject(m, "v", 1);
	cJSON_AddStringToObject(m, "txn", txn);
	cJSON_AddStringToObject(m, "route", route);
	cJSON_AddStringToObject(m, "key", key);
	cJSON_AddStringToObject(m, "thread_key", tkey);
	cJSON_AddNumberToObject(m, "opened_ms", (double)clock_wall_ms());
	cJSON_AddNumberToObject(m, "count", 1);
	cJSON_AddNumberToObject(m, "recovered_ms", 0);
	cJSON_AddNumberToObject(m, "escalated", 0);
	/* What the owners decided, kept with the failure: the on-call is pinged after the
	 * shortest of their delays, and each forward room gets its notice on time. */
	long long escalate = -1;
	cJSON *forward = NULL, *users = NULL;
	for (size_t i = 0; owners && i < owners->n; i++) {
		const struct owners_rule *r = owners->rules[i];
		for (size_t j = 0; j < r->n_users; j++) {
			if (!users)
				users = cJSON_AddArrayToObject(m, "owners");
			cJSON_AddItemToArray(users, cJSON_CreateString(r->users[j]));
		}
		if (r->escalate_after_s >= 0 && (escalate < 0 || r->escalate_after_s < escalate))
			escalate = r->escalate_after_s;
		if (r->forward_room) {
			if (!forward)
				forward = cJSON_AddArrayToObject(m, "forward");
			cJSON *f = cJSON_CreateObject();
			cJSON_AddStringToObject(f, "room", r->forward_room);
			cJSON_AddNumberToObject(f, "after_s", (double)r->forward_after_s);
			cJSON_AddItemToArray(forward, f);
		}
	}
	if (escalate >= 0)
		cJSON_AddNumberToObject(m, "escalate_after_s", (double)escalate);
	cJSON_DeleteItemFromObjectCaseSensitive(content, FAILURE_MARKER);
	cJSON_AddItemToObject(content, FAILURE_MARKER, m);
	free(tkey);
}

/* The marker of an edit carries the failure's state as it is now. */
static void marker_update(cJSON *content, const struct store_failure *f)
{
	cJSON *m = cJSON_GetObjectItemCaseSensitive(content, FAILURE_MARKER);
	if (!cJSON_IsObject(m))
		return;
	cJSON_ReplaceItemInObjectCaseSensitive(m, "count", cJSON_CreateNumber((double)f->count));
	cJSON_ReplaceItemInObjectCaseSensitive(m, "recovered_ms", cJSON_CreateNumber((double)f->recovered_ms));
	cJSON_ReplaceItemInObjectCaseSensitive(m, "escalated", cJSON_CreateNumber((double)f->escalated));
}

void chatops_report_queued(struct chatops *c, const struct zuul_event *ev, const char *txn, const char *room,
			   const char *route, const char *key, const cJSON *content)
{
	if (!c || !is_failure_action(ev->action))
		return;
	char *json = cJSON_PrintUnformatted(content);
	char *tkey = thread_key(ev);
	store_failure_add(c->store, txn, room, route, key, json, tkey, clock_wall_ms());
	/* An edited start report was delivered long ago: its event id is known already. */
	char *event_id = store_sent_event_id(c->store, txn);
	if (event_id)
		store_failure_set_event(c->store, txn, event_id);
	free(event_id);
	free(tkey);
	cJSON_free(json);
	c->next_escalation_ms = 0;
}

static void post_claim_edit(struct chatops *c, const struct store_failure *f, const char *change);

void chatops_repeat_queued(struct chatops *c, const char *root_txn, const char *txn)
{
	if (!c)
		return;
	store_failure_bump(c->store, root_txn, clock_wall_ms());
	struct store_failure f;
	if (store_failure_by_txn(c->store, root_txn, &f) == 1)
		post_claim_edit(c, &f, txn);
	store_failure_clear(&f);
}

static void catchup_save(struct chatops *c);
static void catchup_add_report(struct chatops *c, const char *room, const char *route, const char *action,
			       const char *thread_key, const char *what, int64_t at_ms);

bool chatops_check_recovery(struct chatops *c, const char *route, const struct zuul_event *ev)
{
	if (!c || !ev->action || strcmp(ev->action, "success") != 0)
		return false;
	bool away = c->away_since_ms > 0;
	if (!c->cfg->chatops.threads && !away)
		return false;
	struct strbuf prefix = STRBUF_INIT;
	thread_prefix(ev, &prefix);
	struct store_failure *open;
	size_t n, summarised = 0;
	const char *room = NULL;
	if (store_failures_open_by_prefix(c->store, route, strbuf_str(&prefix), &open, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct store_failure *f = &open[i];
			store_failure_recover(c->store, f->txn_id, clock_wall_ms());
			f->recovered_ms = clock_wall_ms();
			if (away && !f->event_id && f->opened_ms >= c->away_since_ms) {
				/* Failed and recovered while the bridge was away, never posted: the
				 * catch-up summary tells it instead (each repeat counted). */
				struct strbuf what = STRBUF_INIT;
				describe_thread_key(f->thread_key, &what);
				for (int64_t k = 0; k < (f->count > 0 ? f->count : 1) && k < 1000; k++)
					catchup_add_report(c, f->room, route, "failure", f->thread_key, strbuf_str(&what),
							   k == 0 ? f->opened_ms : f->last_ms);
				cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(c->catchup, "skip"), f->txn_id,
							(double)clock_wall_ms());
				strbuf_free(&what);
				room = room ? room : f->room;
				summarised++;
				log_kv(ZLOG_INFO, "failure recovered while away; left to the catch-up summary", "room",
				       f->room, "route", route, "key", f->event_key, NULL);
				if (summarised == 1) {
					/* the success closes the pair; it is not posted either */
					catchup_add_report(c, f->room, route, "success", f->thread_key, strbuf_str(&prefix),
							   clock_wall_ms());
				}
				store_failure_clear(f);
				continue;
			}
			if (!c->cfg->chatops.threads) {
				store_failure_clear(f);
				continue;
			}
			cJSON *notice = notice_new("\u2705 Recovered: the next run succeeded.");
			relations_make_thread_reply(notice, f->event_id, NULL);
			if (!f->event_id)
				relations_point_at_txn(notice, f->txn_id);
			char key[300];
			snprintf(key, sizeof key, "%s|recovered", f->txn_id);
			c->host.post(f->room, "recovered", key, notice, c->host.data);
			cJSON_Delete(notice);
			post_claim_edit(c, f, "recovered");
			log_kv(ZLOG_INFO, "failure recovered", "room", f->room, "route", route, "key", f->event_key, NULL);
			store_failure_clear(f);
		}
		free(open);
	}
	if (summarised)
		catchup_save(c);
	strbuf_free(&prefix);
	return summarised > 0;
}

void chatops_delivered(struct chatops *c, const char *txn, const char *event_id)
{
	if (c)
		store_failure_set_event(c->store, txn, event_id);
}

/* Appends "@a, @b" as pills (html) and plain ids (text). */
static void list_users(char **users, size_t n, struct strbuf *html, struct strbuf *text)
{
	for (size_t i = 0; i < n; i++) {
		const char *sep = i == 0 ? "" : i + 1 == n ? " and " : ", ";
		/* Senders come from the homeserver; escaped all the same. */
		strbuf_printf(html, "%s<a href=\"https://matrix.to/#/", sep);
		strbuf_puts_html(html, users[i]);
		strbuf_puts(html, "\">");
		strbuf_puts_html(html, users[i]);
		strbuf_puts(html, "</a>");
		strbuf_printf(text, "%s%s", sep, users[i]);
	}
}

static void free_users(char **users, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(users[i]);
	free(users);
}

/* Edits the failure's message to show who claimed and who resolved it, as it stands now.
 * `change` (the reaction or redaction event) makes each edit its own transaction. */
static void post_claim_edit(struct chatops *c, const struct store_failure *f, const char *change)
{
	char **claimers = NULL, **resolvers = NULL;
	size_t n_claim = 0, n_resolve = 0;
	if (store_claims_of(c->store, f->txn_id, "claim", &claimers, &n_claim) != 0 ||
	    store_claims_of(c->store, f->txn_id, "resolve", &resolvers, &n_resolve) != 0) {
		free_users(claimers, n_claim);
		return;
	}
	cJSON *content = cJSON_Parse(f->content_json);
	if (!cJSON_IsObject(content)) {
		cJSON_Delete(content);
		free_users(claimers, n_claim);
		free_users(resolvers, n_resolve);
		return;
	}
	struct strbuf html = STRBUF_INIT, text = STRBUF_INIT;
	/* The final state first, then who is on it, then how often it failed. */
	if (f->recovered_ms) {
		strbuf_puts(&html, "<p>\u2705 <b>Recovered</b>: the next run succeeded</p>");
		strbuf_puts(&text, "\u2705 Recovered: the next run succeeded\n");
	}
	if (n_resolve) {
		strbuf_printf(&html, "<p>%s <b>Resolved</b> by ", c->cfg->chatops.resolve_reaction);
		strbuf_printf(&text, "%s Resolved by ", c->cfg->chatops.resolve_reaction);
		list_users(resolvers, n_resolve, &html, &text);
		strbuf_puts(&html, "</p>");
		strbuf_putc(&text, '\n');
	}
	if (n_claim) {
		strbuf_printf(&html, "<p>%s <b>Claimed</b> by ", c->cfg->chatops.claim_reaction);
		strbuf_printf(&text, "%s Claimed by ", c->cfg->chatops.claim_reaction);
		list_users(claimers, n_claim, &html, &text);
		strbuf_puts(&html, "</p>");
		strbuf_putc(&text, '\n');
	} else if (!f->recovered_ms && !n_resolve) {
		strbuf_puts(&html, "<p><i>Unclaimed</i></p>");
		strbuf_puts(&text, "Unclaimed\n");
	}
	if (f->count > 1) {
		time_t since = (time_t)(f->opened_ms / 1000);
		struct tm tm;
		gmtime_r(&since, &tm);
		char when[40];
		strftime(when, sizeof when, "%a %d %b %H:%M UTC", &tm);
		strbuf_printf(&html, "<p>Failed <b>%lld times</b> since %s (see the thread)</p>", (long long)f->count, when);
		strbuf_printf(&text, "Failed %lld times since %s (see the thread)\n", (long long)f->count, when);
	}
	const char *old_html = str_at(content, "formatted_body");
	const char *old_text = str_at(content, "body");
	strbuf_puts(&html, old_html ? old_html : "");
	strbuf_puts(&text, old_text ? old_text : "");
	cJSON_ReplaceItemInObjectCaseSensitive(content, "formatted_body", cJSON_CreateString(strbuf_str(&html)));
	cJSON_ReplaceItemInObjectCaseSensitive(content, "body", cJSON_CreateString(strbuf_str(&text)));
	/* An edit that shows claims pings nobody: the on-call was pinged by the original. */
	cJSON_DeleteItemFromObjectCaseSensitive(content, "m.mentions");
	marker_update(content, f);
	cJSON *edit = relations_edit_new(content, f->event_id, NULL);
	if (!f->event_id) /* queued moments ago: the deliverer fills the id in */
		relations_point_at_txn(edit, f->txn_id);
	char key[300];
	snprintf(key, sizeof key, "%s|%s", f->txn_id, change);
	c->host.post(f->room, "edit", key, edit, c->host.data);
	log_kv(ZLOG_INFO, "failure claim state edited", "room", f->room, "route", f->route, "key", f->event_key,
	       "claimed", n_claim ? claimers[0] : NULL, "resolved", n_resolve ? resolvers[0] : NULL, NULL);
	cJSON_Delete(edit);
	cJSON_Delete(content);
	strbuf_free(&html);
	strbuf_free(&text);
	free_users(claimers, n_claim);
	free_users(resolvers, n_resolve);
}

static void on_reaction(struct chatops *c, const struct sync_event *ev, const cJSON *content)
{
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	const char *rel_type = str_at(rel, "rel_type"), *target = str_at(rel, "event_id"), *key = str_at(rel, "key");
	if (!rel_type || strcmp(rel_type, "m.annotation") != 0 || !target || !key)
		return;
	const char *kind = commands_reaction_matches(key, c->cfg->chatops.claim_reaction)     ? "claim"
			   : commands_reaction_matches(key, c->cfg->chatops.resolve_reaction) ? "resolve"
											     : NULL;
	if (!kind)
		return;
	struct store_failure f;
	if (store_failure_by_event(c->store, target, &f) != 1)
		return; /* a reaction to anything but one of our failure messages */
	if (store_claim_add(c->store, ev->event_id, f.txn_id, ev->sender, kind, clock_wall_ms()) == 1)
		post_claim_edit(c, &f, ev->event_id);
	store_failure_clear(&f);
}

static void on_redaction(struct chatops *c, const struct sync_event *ev, const cJSON *content)
{
	/* Room versions up to 10 carry the redacted id at the top level, 11 in the content. */
	const char *redacts = str_at(ev->event, "redacts") ? str_at(ev->event, "redacts") : str_at(content, "redacts");
	if (!redacts)
		return;
	char *txn = store_claim_remove(c->store, redacts);
	if (!txn)
		return;
	c->next_escalation_ms = 0; /* unclaimed again: its escalation resumes */
	struct store_failure f;
	if (store_failure_by_txn(c->store, txn, &f) == 1 && f.event_id)
		post_claim_edit(c, &f, ev->event_id);
	store_failure_clear(&f);
	free(txn);
}

/* ---- triage: infrastructure incidents ------------------------------------------ */

static void triage_options(const struct config *cfg, struct incident_options *o)
{
	*o = (struct incident_options){.infra_results = (const char *const *)cfg->triage.infra_results,
				       .n_infra_results = cfg->triage.n_infra_results,
				       .job_window_s = cfg->triage.job_window_s,
				       .job_min_projects = cfg->triage.job_min_projects};
}

static void incidents_save(struct chatops *c)
{
	char *json = incident_tracker_save(c->incidents);
	c->host.kv_set(KV_INCIDENTS, json, c->host.data);
	free(json);
}

/* The incident message of a route: one per (route, incident), keyed so. */
static void incident_key(const struct route *r, const char *id, char *key, size_t len)
{
	snprintf(key, len, "%s|%s", r->name, id);
}

/* Edits an incident message that exists to show the incident as it stands, claims
 * included (the stored content is what claim edits are rendered from). */
static void incident_refresh(struct chatops *c, const char *txn, const char *id, const char *change)
{
	struct store_failure f;
	if (store_failure_by_txn(c->store, txn, &f) == 1) {
		cJSON *content = incident_content_new(c->incidents, id, clock_wall_ms());
		if (content) {
			char *json = cJSON_PrintUnformatted(content);
			store_failure_set_content(c->store, txn, json);
			free(f.content_json);
			f.content_json = xstrdup(json);
			cJSON_free(json);
			cJSON_Delete(content);
			post_claim_edit(c, &f, change);
		}
	}
	store_failure_clear(&f);
}

bool chatops_triage(struct chatops *c, const struct zuul_event *ev, const char *key, struct incident_outcome *out)
{
	memset(out, 0, sizeof *out);
	if (!c || !c->incidents || !is_failure_action(ev->action))
		return false;
	bool absorbed = incident_observe(c->incidents, ev, key, clock_wall_ms(), out) == 1;
	if (out->n_opened || out->n_grown)
		incidents_save(c);
	/* Alerts posted before a spread incident formed point at it from their thread. */
	for (size_t i = 0; i < out->n_retro; i++) {
		struct store_failure *list;
		size_t n;
		if (store_failures_by_key(c->store, out->retro[i].event_key, &list, &n) != 0)
			continue;
		for (size_t j = 0; j < n; j++) {
			struct store_failure *f = &list[j];
			struct incident_info info;
			if (incident_get(c->incidents, out->retro[i].incident_id, &info) != 0)
				continue;
			struct strbuf text = STRBUF_INIT;
			strbuf_printf(&text, "\u26A0\uFE0F Part of an infrastructure incident: %s in tenant %s, "
					     "%zu projects so far. It is followed in the incident's message.",
				      info.cause, *info.tenant ? info.tenant : "(none)", info.n_projects);
			cJSON *note = notice_new(strbuf_str(&text));
			relations_make_thread_reply(note, f->event_id, NULL);
			if (!f->event_id)
				relations_point_at_txn(note, f->txn_id);
			char nkey[400];
			snprintf(nkey, sizeof nkey, "%s|%s", f->txn_id, out->retro[i].incident_id);
			c->host.post(f->room, "incident-note", nkey, note, c->host.data);
			cJSON_Delete(note);
			strbuf_free(&text);
		}
		store_failures_free(list, n);
	}
	return absorbed;
}

static void incident_post_one(struct chatops *c, const struct route *r, bool mention, const char *id, bool opened)
{
	char key[400];
	incident_key(r, id, key, sizeof key);
	char *txn = c->host.txn_of("incident", key, c->host.data);
	struct store_failure f;
	bool exists = store_failure_by_txn(c->store, txn, &f) == 1;
	store_failure_clear(&f);
	if (exists) {
		struct incident_info info;
		if (incident_get(c->incidents, id, &info) == 0) {
			char change[64];
			snprintf(change, sizeof change, "grew-%zu", info.n_members);
			incident_refresh(c, txn, id, change);
		}
	} else {
		(void)opened; /* a route that matched only later members posts the incident then */
		cJSON *content = incident_content_new(c->incidents, id, clock_wall_ms());
		if (content) {
			if (mention)
				chatops_mention(c, &(struct zuul_event){.action = "failure"}, NULL, content);
			/* A failure marker, so a lost state_dir can find the incident's claims too. */
			cJSON *m = cJSON_AddObjectToObject(content, FAILURE_MARKER);
			char tkey[300];
			snprintf(tkey, sizeof tkey, "incident|%s", id);
			cJSON_AddNumberToObject(m, "v", 1);
			cJSON_AddStringToObject(m, "txn", txn);
			cJSON_AddStringToObject(m, "route", r->name);
			cJSON_AddStringToObject(m, "key", id);
			cJSON_AddStringToObject(m, "thread_key", tkey);
			cJSON_AddNumberToObject(m, "opened_ms", (double)clock_wall_ms());
			cJSON_AddNumberToObject(m, "count", 1);
			cJSON_AddNumberToObject(m, "recovered_ms", 0);
			cJSON_AddNumberToObject(m, "escalated", 0);
			if (c->host.post(r->room, "incident", key, content, c->host.data) == 0) {
				char *json = cJSON_PrintUnformatted(content);
				store_failure_add(c->store, txn, r->room, r->name, id, json, tkey, clock_wall_ms());
				cJSON_free(json);
				c->next_escalation_ms = 0;
				log_kv(ZLOG_INFO, "infrastructure incident posted", "route", r->name, "incident", id, NULL);
			}
			cJSON_Delete(content);
		}
	}
	free(txn);
}

void chatops_incidents_post(struct chatops *c, const struct route *r, bool mention, const struct incident_outcome *out)
{
	if (!c || !c->incidents)
		return;
	for (size_t i = 0; i < out->n_opened; i++)
		incident_post_one(c, r, mention, out->opened[i], true);
	for (size_t i = 0; i < out->n_grown; i++)
		incident_post_one(c, r, mention, out->grown[i], false);
}

/* Incidents whose window passed: their messages say so. */
static void expire_incidents(struct chatops *c)
{
	if (!c->incidents)
		return;
	char **closed = NULL;
	if (incident_expire(c->incidents, clock_wall_ms(), &closed) == 0) {
		incident_ids_free(closed);
		return;
	}
	for (size_t i = 0; closed && closed[i]; i++) {
		for (size_t k = 0; k < c->cfg->n_routes; k++) {
			char key[400];
			incident_key(&c->cfg->routes[k], closed[i], key, sizeof key);
			char *txn = c->host.txn_of("incident", key, c->host.data);
			incident_refresh(c, txn, closed[i], "closed");
			free(txn);
		}
		log_kv(ZLOG_INFO, "infrastructure incident closed", "incident", closed[i], NULL);
	}
	incident_ids_free(closed);
	incidents_save(c);
}

static void incidents_configure(struct chatops *c)
{
	if (!c->cfg->triage.enabled) {
		incident_tracker_free(c->incidents);
		c->incidents = NULL;
		return;
	}
	struct incident_options o;
	triage_options(c->cfg, &o);
	if (c->incidents) {
		incident_tracker_set_options(c->incidents, &o);
		return;
	}
	c->incidents = incident_tracker_new(&o);
	char *json = c->host.kv_get(KV_INCIDENTS, c->host.data);
	if (json && incident_tracker_load(c->incidents, json) != 0)
		log_kv(ZLOG_WARN, "the saved incidents are unreadable; starting without them", NULL);
	free(json);
}

/* ---- catch-up after an absence -------------------------------------------------- */

static void catchup_reset(struct chatops *c)
{
	cJSON_Delete(c->catchup);
	c->catchup = cJSON_CreateObject();
	cJSON_AddNumberToObject(c->catchup, "away_since", 0);
	cJSON_AddItemToObject(c->catchup, "reports", cJSON_CreateArray());
	cJSON_AddItemToObject(c->catchup, "skip", cJSON_CreateObject());
	c->away_since_ms = 0;
}

static void catchup_save(struct chatops *c)
{
	cJSON_ReplaceItemInObjectCaseSensitive(c->catchup, "away_since", cJSON_CreateNumber((double)c->away_since_ms));
	char *json = cJSON_PrintUnformatted(c->catchup);
	c->host.kv_set(KV_CATCHUP, json, c->host.data);
	cJSON_free(json);
}

static void catchup_load(struct chatops *c)
{
	catchup_reset(c);
	char *json = c->host.kv_get(KV_CATCHUP, c->host.data);
	cJSON *saved = json ? cJSON_Parse(json) : NULL;
	free(json);
	const cJSON *since = cJSON_GetObjectItemCaseSensitive(saved, "away_since");
	if (cJSON_IsNumber(since) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(saved, "reports")) &&
	    cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(saved, "skip"))) {
		cJSON_Delete(c->catchup);
		c->catchup = saved;
		c->away_since_ms = (int64_t)since->valuedouble;
		return;
	}
	cJSON_Delete(saved);
}

static void catchup_add_report(struct chatops *c, const char *room, const char *route, const char *action,
			       const char *thread_key, const char *what, int64_t at_ms)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "room", room);
	cJSON_AddStringToObject(r, "route", route);
	cJSON_AddStringToObject(r, "action", action);
	cJSON_AddStringToObject(r, "thread_key", thread_key);
	cJSON_AddStringToObject(r, "what", what);
	cJSON_AddNumberToObject(r, "at_ms", (double)at_ms);
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(c->catchup, "reports"), r);
}

int64_t chatops_away_since(const struct chatops *c)
{
	return c ? c->away_since_ms : 0;
}

void chatops_away_begin(struct chatops *c, int64_t since_ms)
{
	if (!c || c->away_since_ms || c->cfg->chatops.catch_up_after_s <= 0)
		return;
	c->away_since_ms = since_ms > 0 ? since_ms : 1;
	catchup_save(c);
	char since[32];
	snprintf(since, sizeof since, "%lld", (long long)since_ms);
	log_kv(ZLOG_INFO, "catching up after an absence: recovered failures will be summarised", "away_since_ms",
	       since, NULL);
}

/* The summary of one room's share of the reports. */
static void post_catchup_room(struct chatops *c, const char *room, const cJSON *reports, int64_t to_ms)
{
	size_t n = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, reports)
		n += strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "room")), room) == 0;
	struct digest_report *list = xcalloc(n ? n : 1, sizeof *list);
	char **keys = xcalloc(n ? n : 1, sizeof *keys);
	size_t k = 0;
	cJSON_ArrayForEach(r, reports)
	{
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "room")), room) != 0)
			continue;
		/* project|branch|pipeline|jobs: the parts the summary groups by */
		keys[k] = xstrdup(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "thread_key")));
		char *part[3] = {keys[k], "", ""};
		for (int i = 1; i < 3; i++) {
			char *bar = strchr(part[i - 1], '|');
			if (!bar)
				break;
			*bar = '\0';
			part[i] = bar + 1;
		}
		char *bar = strchr(part[2], '|');
		if (bar)
			*bar = '\0';
		list[k] = (struct digest_report){
			.route = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "route")),
			.action = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "action")),
			.project = part[0],
			.branch = part[1],
			.pipeline = part[2],
			.what = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "what")),
			.at_ms = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "at_ms")),
		};
		k++;
	}
	bool *summarise = xcalloc(n ? n : 1, sizeof *summarise);
	digest_catch_up_plan(list, k, summarise);
	cJSON *content = digest_catch_up_content_new(list, k, summarise, c->away_since_ms, to_ms);
	if (content) {
		char key[300];
		snprintf(key, sizeof key, "%lld|%s", (long long)c->away_since_ms, room);
		c->host.post(room, "catch-up", key, content, c->host.data);
		log_kv(ZLOG_INFO, "catch-up summary posted", "room", room, NULL);
		cJSON_Delete(content);
	}
	for (size_t i = 0; i < k; i++)
		free(keys[i]);
	free(keys);
	free(list);
	free(summarise);
}

void chatops_away_end(struct chatops *c)
{
	if (!c || !c->away_since_ms)
		return;
	int64_t now = clock_wall_ms();
	cJSON *reports = cJSON_GetObjectItemCaseSensitive(c->catchup, "reports");
	/* One summary per room, in the order the rooms first appear. */
	const cJSON *r;
	cJSON *done = cJSON_CreateObject();
	cJSON_ArrayForEach(r, reports)
	{
		const char *room = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "room"));
		if (!room || cJSON_GetObjectItemCaseSensitive(done, room))
			continue;
		cJSON_AddTrueToObject(done, room);
		post_catchup_room(c, room, reports, now);
	}
	cJSON_Delete(done);
	log_kv(ZLOG_INFO, "caught up", NULL);
	/* The skip set outlives the absence a little: replies to a summarised message may
	 * still wait in the outbox. */
	cJSON *skip = cJSON_DetachItemFromObjectCaseSensitive(c->catchup, "skip");
	catchup_reset(c);
	cJSON *entry = skip ? skip->child : NULL;
	while (entry) {
		cJSON *next = entry->next;
		if (cJSON_IsNumber(entry) && now - (int64_t)entry->valuedouble < CATCHUP_SKIP_KEEP_MS)
			cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(c->catchup, "skip"), entry->string,
						entry->valuedouble);
		entry = next;
	}
	cJSON_Delete(skip);
	catchup_save(c);
}

bool chatops_skip(struct chatops *c, const struct outbox_item *item)
{
	const cJSON *skip = c ? cJSON_GetObjectItemCaseSensitive(c->catchup, "skip") : NULL;
	if (!skip || !skip->child)
		return false;
	if (cJSON_GetObjectItemCaseSensitive(skip, item->txn_id))
		return true;
	if (!strstr(item->content_json, "\"" RELATIONS_TXN_KEY "\""))
		return false;
	cJSON *content = cJSON_Parse(item->content_json);
	const char *target = relations_pending_txn(content);
	bool covered = target && cJSON_GetObjectItemCaseSensitive(skip, target);
	cJSON_Delete(content);
	return covered;
}

/* Writes the heartbeat; at the first look, an old one starts a catch-up. */
static void heartbeat(struct chatops *c)
{
	int64_t now = clock_wall_ms();
	if (c->alive_written_ms && now >= c->alive_written_ms && now - c->alive_written_ms < HEARTBEAT_MS)
		return;
	char text[32];
	snprintf(text, sizeof text, "%lld", (long long)now);
	c->host.kv_set(KV_ALIVE, text, c->host.data);
	c->alive_written_ms = now;
}

static void heartbeat_first(struct chatops *c)
{
	char *last = c->host.kv_get(KV_ALIVE, c->host.data);
	int64_t then = last ? strtoll(last, NULL, 10) : 0;
	free(last);
	long long gap = c->cfg->chatops.catch_up_after_s;
	if (then > 0 && gap > 0 && clock_wall_ms() - then > gap * 1000)
		chatops_away_begin(c, then);
	heartbeat(c);
}

/* ---- the daily digest ------------------------------------------------------------ */

static bool unclaimed(struct chatops *c, const struct store_failure *f);

/* Posts route r's digest when its time has come: the open failures nobody claimed, with
 * age and owners; nothing when there are none. The next time is kept in the store, so a
 * restart neither repeats nor skips a day (a digest missed while away comes late, once). */
static void check_digest(struct chatops *c, const struct route *r, const struct config_route_chatops *rco)
{
	char kv[128];
	snprintf(kv, sizeof kv, "digest.next.%s", r->name);
	time_t now = (time_t)(clock_wall_ms() / 1000);
	char *saved = c->host.kv_get(kv, c->host.data);
	time_t due = saved ? (time_t)strtoll(saved, NULL, 10) : 0;
	free(saved);
	if (due && now < due)
		return;
	if (due) {
		const struct room_state *rs = NULL;
		for (size_t i = 0; i < c->n_rooms && !rs; i++)
			if (strcmp(c->rooms[i].room, r->room) == 0)
				rs = &c->rooms[i];
		struct store_failure *open = NULL;
		size_t n = 0;
		store_failures_open(c->store, r->room, &open, &n);
		struct digest_failure *list = xcalloc(n ? n : 1, sizeof *list);
		char **whats = xcalloc(n ? n : 1, sizeof *whats);
		cJSON **markers = xcalloc(n ? n : 1, sizeof *markers);
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			struct store_failure *f = &open[i];
			if (strcmp(f->route, r->name) != 0 || !unclaimed(c, f))
				continue;
			struct strbuf what = STRBUF_INIT;
			describe_thread_key(f->thread_key, &what);
			whats[k] = strbuf_detach(&what);
			markers[k] = cJSON_Parse(f->content_json);
			const cJSON *owners = cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(markers[k], FAILURE_MARKER), "owners");
			size_t n_owners = (size_t)cJSON_GetArraySize(owners);
			const char **ids = xcalloc(n_owners ? n_owners : 1, sizeof *ids);
			size_t m = 0;
			const cJSON *o;
			cJSON_ArrayForEach(o, owners)
				if (cJSON_IsString(o))
					ids[m++] = o->valuestring;
			list[k] = (struct digest_failure){.what = whats[k],
							 .room_id = rs ? rs->room_id : NULL,
							 .event_id = f->event_id,
							 .opened_ms = f->opened_ms,
							 .count = f->count,
							 .owners = ids,
							 .n_owners = m};
			k++;
		}
		cJSON *content = digest_content_new(list, k, clock_wall_ms(), rco->digest_timezone);
		if (content) {
			char key[200];
			snprintf(key, sizeof key, "%s|%lld", r->name, (long long)due);
			c->host.post(r->room, "digest", key, content, c->host.data);
			log_kv(ZLOG_INFO, "daily digest posted", "route", r->name, "room", r->room, NULL);
			cJSON_Delete(content);
		} else {
			log_kv(ZLOG_DEBUG, "daily digest: nothing open and unclaimed", "route", r->name, NULL);
		}
		for (size_t i = 0; i < k; i++) {
			free((void *)list[i].owners);
			free(whats[i]);
			cJSON_Delete(markers[i]);
		}
		free(list);
		free(whats);
		free(markers);
		store_failures_free(open, n);
	}
	char next[32];
	snprintf(next, sizeof next, "%lld", (long long)digest_next_at(rco->digest_minute, rco->digest_timezone, now));
	c->host.kv_set(kv, next, c->host.data);
}

static void check_digests(struct chatops *c)
{
	if (c->n_rooms == 0)
		return;
	for (size_t i = 0; i < c->cfg->n_routes; i++) {
		const struct config_route_chatops *rco = config_route_chatops(c->cfg, &c->cfg->routes[i]);
		if (rco->digest_minute >= 0)
			check_digest(c, &c->cfg->routes[i], rco);
	}
}

/* ---- /sync ---------------------------------------------------------------- */

static void on_event(const struct sync_event *ev, void *data)
{
	struct chatops *c = data;
	struct room_state *rs = room_by_id(c, ev->room_id);
	if (!rs)
		return;
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev->event, "content");
	if (ev->state_key && strcmp(ev->type, "m.room.power_levels") == 0 && ev->state_key[0] == '\0') {
		cJSON_Delete(rs->power_levels);
		rs->power_levels = cJSON_IsObject(content) ? cJSON_Duplicate(content, 1) : NULL;
		return;
	}
	if (ev->state_key && strcmp(ev->type, "m.room.create") == 0) {
		const char *creator = str_at(content, "creator") ? str_at(content, "creator") : ev->sender;
		free(rs->creator);
		rs->creator = creator ? xstrdup(creator) : NULL;
		return;
	}
	if (ev->snapshot || ev->state_key || !ev->sender || (c->user_id && strcmp(ev->sender, c->user_id) == 0))
		return; /* old state, and the bridge's own doings, are not the room talking */
	if (strcmp(ev->type, "m.reaction") == 0) {
		on_reaction(c, ev, content);
		return;
	}
	if (strcmp(ev->type, "m.room.redaction") == 0) {
		on_redaction(c, ev, content);
		return;
	}
	if (strcmp(ev->type, "m.room.message") != 0)
		return;
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	if (str_at(rel, "rel_type") && strcmp(str_at(rel, "rel_type"), "m.replace") == 0)
		return;
	const char *body = str_at(content, "body");
	if (body)
		handle_command(c, rs, ev, body);
}

static char *token_load(void *data)
{
	struct chatops *c = data;
	return c->host.kv_get(KV_SYNC_TOKEN, c->host.data);
}

static void token_save(const char *token, void *data)
{
	struct chatops *c = data;
	c->host.kv_set(KV_SYNC_TOKEN, token, c->host.data);
}

/* ---- rebuilding claims from the rooms ----------------------------------------- */

/* Follows the rooms with /sync from now on. */
static void start_sync(struct chatops *c)
{
	const char **ids = xcalloc(c->n_rooms ? c->n_rooms : 1, sizeof *ids);
	for (size_t i = 0; i < c->n_rooms; i++)
		ids[i] = c->rooms[i].room_id;
	struct sync_callbacks cb = {.token_load = token_load, .token_save = token_save, .on_event = on_event, .data = c};
	struct sync_options opt = {.retry_min_ms = c->conn->matrix.retry_min_ms,
				   .retry_max_ms = c->conn->matrix.retry_max_ms};
	c->sync = sync_new(c->loop, &c->conn->matrix, ids, c->n_rooms, event_types,
			   sizeof event_types / sizeof event_types[0], &cb, &opt);
	if (c->sync)
		sync_start(c->sync);
	free(ids);
}

/* Puts one failure found in a room back into the store with its live claims. Escalation
 * steps already due count as taken: a rebuild must not page anyone for old news. */
static size_t restore_failure(struct chatops *c, const struct rebuild_failure *rf, const char *room)
{
	unsigned due = 0;
	if (c->cfg->chatops.oncall)
		due = rotation_escalation_due(&c->cfg->chatops.rotation, (time_t)(rf->opened_ms / 1000),
					      (time_t)(clock_wall_ms() / 1000));
	struct store_failure f = {
		.txn_id = rf->txn,
		.room = (char *)room,
		.route = rf->route,
		.event_key = rf->key,
		.content_json = rf->content_json,
		.opened_ms = rf->opened_ms,
		.event_id = rf->event_id,
		.thread_key = rf->thread_key,
		.count = rf->count,
		.last_ms = rf->edited_ms ? rf->edited_ms : rf->opened_ms,
		.recovered_ms = rf->recovered_ms,
		.escalated = rf->escalated | due,
	};
	if (store_failure_restore(c->store, &f) != 1)
		return 0;
	size_t claims = 0;
	for (size_t i = 0; i < rf->n_reactions; i++) {
		const struct rebuild_reaction *r = &rf->reactions[i];
		const char *kind = commands_reaction_matches(r->key, c->cfg->chatops.claim_reaction)     ? "claim"
				   : commands_reaction_matches(r->key, c->cfg->chatops.resolve_reaction) ? "resolve"
												     : NULL;
		if (kind && store_claim_add(c->store, r->event_id, rf->txn, r->sender, kind, r->ts_ms) == 1)
			claims++;
	}
	return claims;
}

static void rebuild_done(struct rebuild_result *res, void *data)
{
	struct chatops *c = data;
	rebuild_free(c->rebuild);
	c->rebuild = NULL;
	for (size_t i = 0; i < res->n_rooms; i++) {
		const struct rebuild_room *rr = &res->rooms[i];
		const struct room_state *rs = room_by_id(c, rr->room_id);
		size_t failures = 0, claims = 0;
		for (size_t j = 0; rs && rr->complete && j < res->n_failures; j++) {
			if (strcmp(res->failures[j].room_id, rr->room_id) != 0)
				continue;
			claims += restore_failure(c, &res->failures[j], rs->room);
			failures++;
		}
		char nf[24], nc[24], ne[24];
		snprintf(nf, sizeof nf, "%zu", failures);
		snprintf(nc, sizeof nc, "%zu", claims);
		snprintf(ne, sizeof ne, "%zu", rr->events_scanned);
		if (rr->complete)
			log_kv(ZLOG_INFO, "rebuilt failures and claims from the room's history", "room",
			       rs ? rs->room : rr->room_id, "failures", nf, "claims", nc, "messages_read", ne,
			       "truncated", rr->truncated ? "yes" : "no", NULL);
		else
			log_kv(ZLOG_WARN, "cannot read the room's history; its old claims are not known", "room",
			       rs ? rs->room : rr->room_id, "reason", rr->reason, NULL);
	}
	rebuild_result_free(res);
	c->next_escalation_ms = 0;
	start_sync(c);
}

/* ---- handovers ------------------------------------------------------------- */

static void post_handover(struct chatops *c, const struct rotation_handover *h)
{
	const struct rotation_config *rc = &c->cfg->chatops.rotation;
	struct rotation_oncall oc;
	char until[64] = "";
	if (rotation_oncall(rc, h->at, &oc) == 0 && oc.until)
		rotation_format_time(rc, oc.until, until, sizeof until);
	struct strbuf text = STRBUF_INIT;
	strbuf_printf(&text, "On-call handover: %s hands over to %s", h->from ? h->from : "nobody",
		      h->to ? h->to : "nobody");
	if (*until)
		strbuf_printf(&text, " (until %s)", until);
	strbuf_putc(&text, '.');
	char key[32];
	snprintf(key, sizeof key, "%lld", (long long)h->at);
	for (size_t i = 0; i < c->n_rooms; i++) {
		cJSON *content = notice_new(strbuf_str(&text));
		/* The one taking over is pinged; the one handing over is only named. */
		if (h->to)
			relations_add_mentions(content, &h->to, 1);
		c->host.post(c->rooms[i].room, "handover", key, content, c->host.data);
		cJSON_Delete(content);
	}
	log_kv(ZLOG_INFO, "on-call handover announced", "from", h->from, "to", h->to, "at", key, NULL);
	strbuf_free(&text);
}

/* Announces the handovers passed since the last look. After a long absence only the
 * latest is announced: a backlog of stale notices helps nobody. The first look ever
 * announces nothing, it only remembers the time. */
static void check_handovers(struct chatops *c)
{
	if (!c->cfg->chatops.oncall || c->n_rooms == 0)
		return;
	time_t now = (time_t)(clock_wall_ms() / 1000);
	char *last_text = c->host.kv_get(KV_LAST_HANDOVER, c->host.data);
	time_t last = last_text ? (time_t)strtoll(last_text, NULL, 10) : 0;
	free(last_text);
	if (last && now > last) {
		size_t n = 0;
		struct rotation_handover *hs = rotation_handovers(&c->cfg->chatops.rotation, last + 1, now + 1, &n);
		if (n > 0)
			post_handover(c, &hs[n - 1]);
		free(hs);
	}
	if (!last || now > last) {
		char now_text[32];
		snprintf(now_text, sizeof now_text, "%lld", (long long)now);
		c->host.kv_set(KV_LAST_HANDOVER, now_text, c->host.data);
	}
}

/* ---- escalation of unclaimed failures --------------------------------------- */

/* Bits of a failure's `escalated` mask beyond the rotation's steps: the notice to the
 * i-th forward room of its owners went out. */
#define FORWARD_SENT(i) (1u << (2 + (i)))

/* Whether nobody claimed or resolved the failure. */
static bool unclaimed(struct chatops *c, const struct store_failure *f)
{
	char **users = NULL;
	size_t n = 0, m = 0;
	store_claims_of(c->store, f->txn_id, "claim", &users, &n);
	free_users(users, n);
	store_claims_of(c->store, f->txn_id, "resolve", &users, &m);
	free_users(users, m);
	return n == 0 && m == 0;
}

/* Whether its route pings anyone: a route that mentions nobody on a new failure does not
 * ping later either. */
static bool route_pings(struct chatops *c, const struct store_failure *f)
{
	const struct route *r = config_find_route(c->cfg, f->route);
	return r && config_route_chatops(c->cfg, r)->mention_oncall;
}

/* Posts the steps of `due` as one message in the failure's thread, pinging who they name. */
static void post_escalation(struct chatops *c, const struct store_failure *f, unsigned due, time_t now)
{
	const struct rotation_config *rc = &c->cfg->chatops.rotation;
	const char **who = xcalloc(rc->n_fallback + 1, sizeof *who);
	size_t n = 0;
	struct rotation_oncall oc;
	bool oncall = (due & ROTATION_STEP_PING_ONCALL) && c->cfg->chatops.oncall &&
		      rotation_oncall(rc, now, &oc) == 0 && oc.user;
	if (oncall)
		who[n++] = oc.user;
	if (due & ROTATION_STEP_FALLBACK)
		for (size_t i = 0; i < rc->n_fallback; i++)
			who[n++] = rc->fallback[i];
	char age[32];
	duration_format((double)(now - f->opened_ms / 1000), age, sizeof age);
	struct strbuf text = STRBUF_INIT;
	strbuf_printf(&text, "\u23F0 Still unclaimed after %s.", age);
	if (due & ROTATION_STEP_FALLBACK)
		strbuf_puts(&text, " Escalating: can one of you take it?");
	else if (oncall)
		strbuf_puts(&text, " You are on call: can you take it?");
	else
		strbuf_puts(&text, " Nobody is on call right now.");
	strbuf_printf(&text, " React %s to claim it.", c->cfg->chatops.claim_reaction);
	cJSON *content = notice_new(strbuf_str(&text));
	relations_add_mentions(content, who, n);
	relations_make_thread_reply(content, f->event_id, NULL);
	if (!f->event_id)
		relations_point_at_txn(content, f->txn_id);
	char key[300];
	snprintf(key, sizeof key, "%s|escalate|%u", f->txn_id, due);
	c->host.post(f->room, "escalation", key, content, c->host.data);
	log_kv(ZLOG_INFO, "unclaimed failure escalated", "room", f->room, "route", f->route, "key", f->event_key,
	       "step", (due & ROTATION_STEP_FALLBACK) ? "fallback" : "oncall", "oncall", oncall ? oc.user : NULL, NULL);
	cJSON_Delete(content);
	strbuf_free(&text);
	free(who);
}

/* A short notice in another room (an owners rule's forward_room) linking to the failure. */
static void post_forward(struct chatops *c, const struct store_failure *f, const char *forward_room, int index)
{
	const struct room_state *rs = NULL;
	for (size_t i = 0; i < c->n_rooms && !rs; i++)
		if (strcmp(c->rooms[i].room, f->room) == 0)
			rs = &c->rooms[i];
	struct strbuf what = STRBUF_INIT, text = STRBUF_INIT, html = STRBUF_INIT;
	describe_thread_key(f->thread_key, &what);
	char *room = matrix_escape_segment(rs ? rs->room_id : f->room);
	char *event = matrix_escape_segment(f->event_id);
	strbuf_printf(&text, "\u26A0\uFE0F Forwarded from %s: %s failed. https://matrix.to/#/%s/%s", f->room,
		      strbuf_str(&what), room, event);
	strbuf_puts(&html, "\u26A0\uFE0F Forwarded from ");
	strbuf_puts_html(&html, f->room);
	strbuf_printf(&html, ": <a href=\"https://matrix.to/#/%s/%s\">", room, event);
	strbuf_puts_html(&html, strbuf_str(&what));
	strbuf_puts(&html, "</a> failed.");
	cJSON *content = notice_new(strbuf_str(&text));
	cJSON_AddStringToObject(content, "format", "org.matrix.custom.html");
	cJSON_AddStringToObject(content, "formatted_body", strbuf_str(&html));
	char key[300];
	snprintf(key, sizeof key, "%s|forward|%d", f->txn_id, index);
	c->host.post(forward_room, "forward", key, content, c->host.data);
	log_kv(ZLOG_INFO, "failure forwarded", "room", f->room, "to", forward_room, "key", f->event_key, NULL);
	cJSON_Delete(content);
	free(room);
	free(event);
	strbuf_free(&what);
	strbuf_free(&text);
	strbuf_free(&html);
}

/* Takes the escalation steps and forwards that came due for one open failure; returns
 * when the next one is due (Unix ms), 0 when none is left. */
static int64_t escalate_one(struct chatops *c, struct store_failure *f, int64_t now_ms)
{
	time_t now = (time_t)(now_ms / 1000), t0 = (time_t)(f->opened_ms / 1000);
	cJSON *content = cJSON_Parse(f->content_json);
	const cJSON *marker = cJSON_GetObjectItemCaseSensitive(content, FAILURE_MARKER);
	const cJSON *delay = cJSON_GetObjectItemCaseSensitive(marker, "escalate_after_s");
	const cJSON *forward = cJSON_GetObjectItemCaseSensitive(marker, "forward");
	/* The owners' own delay before the on-call is pinged replaces the room's. */
	struct rotation_config rc = c->cfg->chatops.rotation;
	if (cJSON_IsNumber(delay) && delay->valuedouble >= 0 && delay->valuedouble <= 30 * 86400.0)
		rc.escalate_after_s = (long long)delay->valuedouble;
	bool open = unclaimed(c, f);
	unsigned done = f->escalated;
	int64_t next = 0;
	if (open) {
		unsigned due = rotation_escalation_due(&rc, t0, now) & ~done;
		if (due) {
			post_escalation(c, f, due, now);
			done |= due;
		}
		time_t later = rotation_escalation_next(&rc, t0, done);
		next = later ? (int64_t)later * 1000 : 0;
	}
	/* A forward "with the failure" (after 0) goes out whatever happens; a later one only
	 * while nobody has taken the failure. It waits for the message's event id to link. */
	int i = 0;
	const cJSON *fw;
	cJSON_ArrayForEach(fw, forward)
	{
		const cJSON *room = cJSON_GetObjectItemCaseSensitive(fw, "room");
		const cJSON *after = cJSON_GetObjectItemCaseSensitive(fw, "after_s");
		if (i >= CHATOPS_OWNERS_MAX || !cJSON_IsString(room) || !cJSON_IsNumber(after))
			break;
		int64_t at = f->opened_ms + (int64_t)after->valuedouble * 1000;
		if (!(done & FORWARD_SENT(i)) && (open || after->valuedouble == 0)) {
			if (now_ms >= at && f->event_id) {
				post_forward(c, f, room->valuestring, i);
				done |= FORWARD_SENT(i);
			} else {
				int64_t when = now_ms >= at ? now_ms + 1000 : at; /* not delivered yet */
				if (!next || when < next)
					next = when;
			}
		}
		i++;
	}
	if (done != f->escalated) {
		f->escalated = done;
		store_failure_set_escalated(c->store, f->txn_id, done);
	}
	cJSON_Delete(content);
	return next;
}

/* Takes the steps that came due for the open failures. Steps missed while the bridge was
 * away are taken together, in one message. */
static void check_escalations(struct chatops *c)
{
	if ((!c->cfg->chatops.oncall && !c->cfg->owners.n_rules) || c->n_rooms == 0)
		return;
	int64_t now_ms = clock_wall_ms();
	if (c->next_escalation_ms && now_ms < c->next_escalation_ms)
		return;
	struct store_failure *open;
	size_t n;
	if (store_failures_open(c->store, NULL, &open, &n) != 0)
		return;
	int64_t next = INT64_MAX;
	for (size_t i = 0; i < n; i++) {
		if (!route_pings(c, &open[i]))
			continue;
		int64_t later = escalate_one(c, &open[i], now_ms);
		if (later && later < next)
			next = later;
	}
	store_failures_free(open, n);
	/* Nothing pending: look again in a minute (the rotation may change on reload). */
	c->next_escalation_ms = next == INT64_MAX ? now_ms + 60000 : next;
}

static void tick(struct loop *loop, void *data)
{
	struct chatops *c = data;
	check_handovers(c);
	expire_mutes(c);
	check_escalations(c);
	expire_incidents(c);
	check_digests(c);
	heartbeat(c);
	c->tick_timer = loop_timer_add(loop, clock_tick_ms(), tick, c);
}

/* ---- life cycle ------------------------------------------------------------ */

struct chatops *chatops_new(struct loop *loop, const struct config *conn, const struct config *cfg,
			    const char *user_id, struct store *store, const struct chatops_host *host)
{
	struct chatops *c = xcalloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->loop = loop;
	c->conn = conn;
	c->cfg = cfg;
	c->user_id = user_id ? xstrdup(user_id) : NULL;
	c->host = *host;
	c->store = store;
	mutes_load(c);
	incidents_configure(c);
	catchup_load(c);
	heartbeat_first(c);
	return c;
}

static void rooms_clear(struct chatops *c)
{
	for (size_t i = 0; i < c->n_rooms; i++) {
		free(c->rooms[i].room);
		free(c->rooms[i].room_id);
		free(c->rooms[i].creator);
		cJSON_Delete(c->rooms[i].power_levels);
	}
	free(c->rooms);
	c->rooms = NULL;
	c->n_rooms = 0;
}

void chatops_set_rooms(struct chatops *c, const struct chatops_room *rooms, size_t n)
{
	/* Known rooms keep what sync told about them; new ones learn it from the snapshot
	 * sync sends for rooms added to its filter. */
	struct room_state *fresh = xcalloc(n ? n : 1, sizeof *fresh);
	const char **ids = xcalloc(n ? n : 1, sizeof *ids);
	for (size_t i = 0; i < n; i++) {
		struct room_state *old = room_by_id(c, rooms[i].room_id);
		fresh[i].room = xstrdup(rooms[i].room);
		fresh[i].room_id = xstrdup(rooms[i].room_id);
		if (old) {
			fresh[i].power_levels = old->power_levels;
			fresh[i].creator = old->creator;
			old->power_levels = NULL;
			old->creator = NULL;
		}
		ids[i] = fresh[i].room_id;
	}
	rooms_clear(c);
	c->rooms = fresh;
	c->n_rooms = n;
	if (!c->sync && !c->rebuild) {
		c->tick_timer = loop_timer_add(c->loop, clock_tick_ms(), tick, c);
		/* No /sync position: a first start, or state_dir was lost. Either way the rooms
		 * may hold failure messages and claims this store does not know: read them back
		 * before following the rooms. */
		char *token = c->host.kv_get(KV_SYNC_TOKEN, c->host.data);
		if (!token && c->user_id)
			c->rebuild = rebuild_start(c->loop, &c->conn->matrix, c->user_id, ids, n, NULL, rebuild_done, c);
		free(token);
		if (!c->rebuild)
			start_sync(c);
	} else if (c->sync) {
		sync_set_rooms(c->sync, ids, n);
	}
	free(ids);
}

void chatops_set_user_id(struct chatops *c, const char *user_id)
{
	free(c->user_id);
	c->user_id = user_id ? xstrdup(user_id) : NULL;
}

void chatops_reload(struct chatops *c, const struct config *cfg)
{
	c->cfg = cfg;
	c->next_escalation_ms = 0;
	incidents_configure(c);
}

void chatops_free(struct chatops *c)
{
	if (!c)
		return;
	sync_free(c->sync);
	rebuild_free(c->rebuild);
	incident_tracker_free(c->incidents);
	cJSON_Delete(c->catchup);
	loop_timer_cancel(c->loop, c->tick_timer);
	rooms_clear(c);
	for (size_t i = 0; i < c->n_mutes; i++)
		mute_clear(&c->mutes[i]);
	free(c->mutes);
	free(c->user_id);
	free(c);
}
