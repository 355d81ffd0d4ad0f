/* chatops_actions: acting on Zuul from the room (issue #17). `recheck`, `dequeue`,
 * `autohold`, `autoholds` and `autohold delete` said in a failure's thread (or as a reply to
 * it), and a 🔁 reaction on a failure: who may (the tenant's listed users with the room's
 * command power level), the confirmation a dequeue or autohold waits for, the call to Zuul's
 * admin API with a token naming the asker, and what the thread and the audit log say.
 * Each acting event is recorded (store_actions.h) and committed before its call goes out,
 * in the next turn: a replayed /sync, a restart or an edit never acts twice. The same on an
 * incident is chatops_actions_incident.c's, the link to a recheck's next report
 * chatops_actions_follow.c's, the calls a stop cut short chatops_actions_interrupted.c's; the
 * calls themselves (token, request, answer) and their list chatops_actions_call.c's. */
#include "chatops_actions_internal.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "commands.h"
#include "log.h"
#include "relations.h"
#include "store_actions.h"
#include "strbuf.h"
#include "zuul_admin.h"

/* The reaction that rechecks a failure: U+1F501 CLOCKWISE RIGHTWARDS AND LEFTWARDS OPEN
 * CIRCLE ARROWS, what clients show as "repeat". */
#define RECHECK_REACTION "\U0001F501"
/* A dequeue or autohold is confirmed by its asker within this time, with one of these. */
#define CONFIRM_WINDOW_MS (5LL * 60 * 1000)
static const char *const confirm_reactions[] = {"\u2705", "\U0001F44D"};

const char *const actions_outcome_names[] = {"accepted", "refused", "unreachable", "denied"};

/* ---- the marker's item ------------------------------------------------------- */

static void add_opt(cJSON *o, const char *key, const char *v)
{
	if (v && *v)
		cJSON_AddStringToObject(o, key, v);
}

void chatops_marker_add_item(cJSON *marker, const struct zuul_event *ev)
{
	cJSON *it = cJSON_AddObjectToObject(marker, "item");
	add_opt(it, "tenant", ev->tenant);
	add_opt(it, "project", ev->item.project);
	add_opt(it, "pipeline", ev->pipeline);
	add_opt(it, "change", ev->item.change);
	add_opt(it, "patchset", ev->item.patchset);
	if (!ev->item.change)
		add_opt(it, "ref", ev->item.ref);
}

void actions_item_clear(struct action_item *it)
{
	free(it->tenant);
	free(it->project);
	free(it->pipeline);
	free(it->change);
	free(it->patchset);
	free(it->ref);
	memset(it, 0, sizeof *it);
}

void actions_item_from_json(const cJSON *o, struct action_item *it)
{
	it->tenant = xstrdup(chatops_str_at(o, "tenant"));
	it->project = xstrdup(chatops_str_at(o, "project"));
	it->pipeline = xstrdup(chatops_str_at(o, "pipeline"));
	it->change = xstrdup(chatops_str_at(o, "change"));
	it->patchset = xstrdup(chatops_str_at(o, "patchset"));
	it->ref = xstrdup(chatops_str_at(o, "ref"));
}

void actions_item_to_json(const struct action_item *it, cJSON *o)
{
	add_opt(o, "tenant", it->tenant);
	add_opt(o, "project", it->project);
	add_opt(o, "pipeline", it->pipeline);
	add_opt(o, "change", it->change);
	add_opt(o, "patchset", it->patchset);
	add_opt(o, "ref", it->ref);
}

/* Identical items are one: same tenant, project, pipeline and change,patchset or ref. */
char *actions_item_key(const cJSON *item)
{
	struct strbuf sb = STRBUF_INIT;
	static const char *const keys[] = {"tenant", "project", "pipeline", "change", "patchset", "ref"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		strbuf_printf(&sb, "%s\x1f", chatops_str_at(item, keys[i]) ?: "");
	return strbuf_detach(&sb);
}

/* "change 812,3 of org/repo in check" or "refs/heads/main of org/repo in periodic-daily". */
void actions_describe_item(const struct action_item *it, struct strbuf *out)
{
	if (it->change)
		strbuf_printf(out, "change %s,%s of %s", it->change, it->patchset ? it->patchset : "?",
			      it->project ? it->project : "?");
	else
		strbuf_printf(out, "%s of %s", it->ref ? it->ref : "?", it->project ? it->project : "?");
	if (it->pipeline)
		strbuf_printf(out, " in %s", it->pipeline);
}

/* ---- where a command points ------------------------------------------------------ */

/* The failure a command is about: the root of the thread it was said in, else the message
 * it replies to; only a failure of the command's own room. 1 with *f filled, or 0. */
int actions_target_failure(struct chatops *c, const struct sync_event *ev, struct store_failure *f)
{
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev->event, "content");
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	const char *rel_type = chatops_str_at(rel, "rel_type");
	const char *target = rel_type && strcmp(rel_type, "m.thread") == 0
				     ? chatops_str_at(rel, "event_id")
				     : chatops_str_at(cJSON_GetObjectItemCaseSensitive(rel, "m.in_reply_to"), "event_id");
	memset(f, 0, sizeof *f);
	if (!target || store_failure_by_event(c->store, target, f) != 1)
		return 0;
	if (!chatops_room_is(c, f->room, ev->room_id)) {
		store_failure_clear(f);
		return 0;
	}
	return 1;
}

/* The item of failure f from its marker; false when the marker has none (a failure posted
 * before the bridge knew actions). */
bool actions_failure_item(const struct store_failure *f, struct action_item *it)
{
	memset(it, 0, sizeof *it);
	cJSON *content = cJSON_Parse(f->content_json ? f->content_json : "");
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(content, FAILURE_MARKER),
							    "item");
	bool ok = cJSON_IsObject(item) && chatops_str_at(item, "tenant") && chatops_str_at(item, "project");
	if (ok)
		actions_item_from_json(item, it);
	cJSON_Delete(content);
	return ok;
}

/* ---- saying it --------------------------------------------------------------------- */

/* A notice in the failure's thread (root), answering reply_to; without a root, a reply to
 * reply_to. Posted once per key. */
void actions_post_notice(struct chatops *c, const char *room, const char *root, const char *reply_to, const char *key,
			const char *text)
{
	cJSON *n = chatops_notice_new(text);
	if (root) {
		relations_make_thread_reply(n, root, reply_to ? reply_to : root);
	} else if (reply_to) {
		cJSON *r = cJSON_AddObjectToObject(n, "m.relates_to");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "m.in_reply_to"), "event_id", reply_to);
	}
	if (c->host.post(room, "reply", key, n, c->host.data) != 0)
		log_kv(ZLOG_ERROR, "cannot queue the answer to an action on Zuul", "room", room, "key", key, NULL);
	cJSON_Delete(n);
}

/* The audit line: one per action, whatever came of it. Fields without a value are left out
 * (a denial has no status, an autoholds list no project). */
void actions_audit(const char *kind, const char *user, const struct action_item *it, enum outcome o, long status,
		  const char *reason, const char *event_id)
{
	char st[16] = "";
	if (status)
		snprintf(st, sizeof st, "%ld", status);
	struct strbuf change = STRBUF_INIT;
	if (it && it->change)
		strbuf_printf(&change, "%s,%s", it->change, it->patchset ? it->patchset : "");
	const char *kv[24] = {0};
	size_t n = 0;
#define PUT(k, v)                                                                                                      \
	do {                                                                                                           \
		const char *v_ = (v);                                                                                  \
		if (v_ && *v_) {                                                                                       \
			kv[n++] = (k);                                                                                 \
			kv[n++] = v_;                                                                                  \
		}                                                                                                      \
	} while (0)
	PUT("action", kind);
	PUT("user", user);
	PUT("tenant", it ? it->tenant : NULL);
	PUT("project", it ? it->project : NULL);
	PUT("pipeline", it ? it->pipeline : NULL);
	PUT("change", change.len ? strbuf_str(&change) : NULL);
	PUT("ref", it && !it->change ? it->ref : NULL);
	PUT("outcome", actions_outcome_names[o]);
	PUT("status", st);
	PUT("reason", reason);
	PUT("event_id", event_id);
#undef PUT
	log_kv(o == OUT_ACCEPTED ? ZLOG_INFO : ZLOG_WARN, "zuul action", kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], kv[6],
	       kv[7], kv[8], kv[9], kv[10], kv[11], kv[12], kv[13], kv[14], kv[15], kv[16], kv[17], kv[18], kv[19],
	       kv[20], kv[21], NULL);
	strbuf_free(&change);
}

void actions_count(struct chatops *c, enum outcome o)
{
	if (c->host.stats)
		c->host.stats->zuul_actions[o]++;
}

/* ---- who may ---------------------------------------------------------------------- */

/* NULL when user may act on tenant in rs, else why not (plain text into out). */
const char *actions_denial(struct chatops *c, const struct room_state *rs, const char *user,
			  const struct config_actions_tenant *t, const char *tenant, struct strbuf *out)
{
	const struct config *cfg = c->cfg;
	if (!cfg->actions.enabled) {
		strbuf_puts(out, "acting on Zuul is not configured here (no actions group)");
		return strbuf_str(out);
	}
	if (!t) {
		strbuf_printf(out, "the bridge does not act on tenant %s (it is not in actions.tenants)",
			      tenant ? tenant : "(unknown)");
		return strbuf_str(out);
	}
	if (!config_actions_user_listed(t, user)) {
		strbuf_printf(out, "%s is not one of the users who may act on tenant %s", user, t->name);
		return strbuf_str(out);
	}
	long long level = commands_creator_outranks(rs->create_content, rs->creator, user)
				  ? LLONG_MAX
				  : commands_user_level(rs->power_levels, user, rs->creator);
	if (!commands_allowed(level, cfg->chatops.command_power_level)) {
		strbuf_printf(out, "%s has power level %lld in this room; acting on Zuul needs %d", user, level,
			      cfg->chatops.command_power_level);
		return strbuf_str(out);
	}
	if (!c->host.commit_soon) {
		strbuf_puts(out, "this bridge cannot record actions");
		return strbuf_str(out);
	}
	return NULL;
}

/* "recheck of refs/heads/main of org/repo in periodic-daily (tenant scs)" */
char *actions_describe_action(const char *kind, const struct action_item *it, const cJSON *req)
{
	struct strbuf sb = STRBUF_INIT;
	if (strcmp(kind, "autohold") == 0) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(req, "count");
		strbuf_printf(&sb, "autohold of job %s (%d failed build%s) for ", chatops_str_at(req, "job") ?: "?",
			      cJSON_IsNumber(n) ? n->valueint : 1, cJSON_IsNumber(n) && n->valueint == 1 ? "" : "s");
	} else {
		strbuf_printf(&sb, "%s of ", kind);
	}
	actions_describe_item(it, &sb);
	strbuf_printf(&sb, " (tenant %s)", it->tenant ? it->tenant : "?");
	return strbuf_detach(&sb);
}

/* Records and refuses: the user may not act. Said in the thread, logged and counted once. */
void actions_deny(struct chatops *c, const struct room_state *rs, const struct sync_event *ev, const char *kind,
		 const struct action_item *it, const char *root, const char *why)
{
	struct store_action a = {.event_id = (char *)ev->event_id, .kind = (char *)kind, .room = rs->room,
				 .user_id = (char *)ev->sender, .state = "denied", .created_ms = clock_wall_ms()};
	if (store_action_begin(c->store, &a) != 1)
		return; /* seen before: refused then */
	actions_count(c, OUT_DENIED);
	actions_audit(kind, ev->sender, it, OUT_DENIED, 0, why, ev->event_id);
	struct strbuf text = STRBUF_INIT;
	strbuf_printf(&text, "Not done: %s.", why);
	actions_post_notice(c, rs->room, root, ev->event_id, ev->event_id, strbuf_str(&text));
	strbuf_free(&text);
}

/* ---- commands ------------------------------------------------------------------------- */

/* recheck now; dequeue and autohold after the asker's confirmation. */
static void item_command(struct chatops *c, struct room_state *rs, const struct sync_event *ev, const char *kind,
			 const struct commands_parsed *p)
{
	const char *prefix = c->cfg->chatops.command_prefix;
	struct store_failure f;
	if (!actions_target_failure(c, ev, &f)) {
		struct strbuf text = STRBUF_INIT;
		strbuf_printf(&text, "Say \"%s %s\" in a failure's thread, or as a reply to the failure: it names what to act on.",
			      prefix, kind);
		actions_post_notice(c, rs->room, NULL, ev->event_id, ev->event_id, strbuf_str(&text));
		strbuf_free(&text);
		return;
	}
	if (actions_is_incident(&f)) {
		actions_incident_command(c, rs, ev, kind, &f);
		store_failure_clear(&f);
		return;
	}
	struct action_item it;
	if (!actions_failure_item(&f, &it)) {
		actions_post_notice(c, rs->room, f.event_id, ev->event_id, ev->event_id,
			    "This failure's message does not say which Zuul item it was (it is older than the "
			    "bridge's actions): nothing can be done from here.");
		store_failure_clear(&f);
		return;
	}
	const struct config_actions_tenant *t = config_actions_tenant(&c->cfg->actions, it.tenant);
	struct strbuf why = STRBUF_INIT;
	if (actions_denial(c, rs, ev->sender, t, it.tenant, &why)) {
		actions_deny(c, rs, ev, kind, &it, f.event_id, strbuf_str(&why));
		goto out;
	}
	cJSON *req = cJSON_CreateObject();
	actions_item_to_json(&it, req);
	if (strcmp(kind, "autohold") == 0) {
		cJSON_AddStringToObject(req, "job", p->job);
		cJSON_AddNumberToObject(req, "count", p->count);
		cJSON_AddStringToObject(req, "reason", p->reason);
	}
	cJSON_AddStringToObject(req, "root", f.event_id);
	struct zuul_admin_request r;
	const char *problem = NULL;
	if (actions_build_request(kind, &it, req, &r, &problem) != 0) {
		strbuf_reset(&why);
		strbuf_printf(&why, "%s", problem);
		actions_deny(c, rs, ev, kind, &it, f.event_id, strbuf_str(&why));
		cJSON_Delete(req);
		goto out;
	}
	char *json = cJSON_PrintUnformatted(req);
	char *what = actions_describe_action(kind, &it, req);
	bool confirm = strcmp(kind, "recheck") != 0;
	char *qtxn = confirm ? c->host.txn_of("reply", ev->event_id, c->host.data) : NULL;
	int64_t now = clock_wall_ms();
	struct store_action a = {.event_id = (char *)ev->event_id, .kind = (char *)kind, .room = rs->room,
				 .user_id = (char *)ev->sender, .request_json = json, .question_txn = qtxn,
				 .state = confirm ? "pending" : "sent", .created_ms = now,
				 .expires_ms = confirm ? now + CONFIRM_WINDOW_MS : 0};
	int rec = store_action_begin(c->store, &a);
	if (rec == 1 && confirm) {
		struct strbuf text = STRBUF_INIT;
		strbuf_printf(&text, "%s asks for the %s. %s, react \u2705 to this message within 5 minutes to do it.",
			      ev->sender, what, ev->sender);
		actions_post_notice(c, rs->room, f.event_id, ev->event_id, ev->event_id, strbuf_str(&text));
		strbuf_free(&text);
		log_kv(ZLOG_INFO, "zuul action awaits its confirmation", "action", kind, "user", ev->sender, "event_id",
		       ev->event_id, NULL);
	} else if (rec == 1) {
		struct call *k = actions_call_new(kind, rs->room, ev->event_id, f.event_id, ev->event_id, ev->sender, t->api);
		k->what = what;
		what = NULL;
		k->it = it;
		memset(&it, 0, sizeof it);
		k->req = r;
		memset(&r, 0, sizeof r);
		actions_queue_call(c, k);
	} else if (rec == 0) {
		log_kv(ZLOG_DEBUG, "an action's event was seen before; not acting again", "event_id", ev->event_id, NULL);
	}
	zuul_admin_request_clear(&r);
	free(what);
	free(qtxn);
	cJSON_free(json);
	cJSON_Delete(req);
out:
	strbuf_free(&why);
	actions_item_clear(&it);
	store_failure_clear(&f);
}

/* The tenant `autoholds` and `autohold delete` are about: the failure's (in its thread),
 * else the only one configured. NULL (answered) when neither. */
static const struct config_actions_tenant *context_tenant(struct chatops *c, struct room_state *rs,
							  const struct sync_event *ev, char **root)
{
	struct store_failure f;
	const struct config_actions_tenant *t = NULL;
	*root = NULL;
	if (actions_target_failure(c, ev, &f)) {
		struct action_item it;
		if (actions_failure_item(&f, &it))
			t = config_actions_tenant(&c->cfg->actions, it.tenant);
		*root = xstrdup(f.event_id);
		actions_item_clear(&it);
		store_failure_clear(&f);
		if (t)
			return t;
	}
	if (c->cfg->actions.n_tenants == 1)
		return &c->cfg->actions.tenants[0];
	actions_post_notice(c, rs->room, *root, ev->event_id, ev->event_id,
		    "Which tenant? Say it in the thread of one of its failures.");
	return NULL;
}

static void tenant_command(struct chatops *c, struct room_state *rs, const struct sync_event *ev, const char *kind,
			   const struct commands_parsed *p)
{
	char *root = NULL;
	const struct config_actions_tenant *t = c->cfg->actions.enabled ? context_tenant(c, rs, ev, &root) : NULL;
	if (!t && c->cfg->actions.enabled) {
		free(root);
		return;
	}
	struct action_item it = {.tenant = xstrdup(t ? t->name : NULL)};
	struct strbuf why = STRBUF_INIT;
	if (actions_denial(c, rs, ev->sender, t, it.tenant, &why)) {
		actions_deny(c, rs, ev, kind, &it, root, strbuf_str(&why));
		goto out;
	}
	struct zuul_admin_request r;
	const char *problem = NULL;
	int rc = strcmp(kind, "autoholds") == 0 ? zuul_admin_autohold_list(t->name, &r, &problem)
						: zuul_admin_autohold_delete(t->name, p->hold_id, &r, &problem);
	if (rc != 0) {
		actions_deny(c, rs, ev, kind, &it, root, problem);
		goto out;
	}
	struct store_action a = {.event_id = (char *)ev->event_id, .kind = (char *)kind, .room = rs->room,
				 .user_id = (char *)ev->sender, .state = "sent", .created_ms = clock_wall_ms()};
	if (store_action_begin(c->store, &a) == 1) {
		struct call *k = actions_call_new(kind, rs->room, ev->event_id, root, ev->event_id, ev->sender, t->api);
		struct strbuf what = STRBUF_INIT;
		if (strcmp(kind, "autoholds") == 0)
			strbuf_printf(&what, "autoholds of tenant %s", t->name);
		else
			strbuf_printf(&what, "removal of autohold %s (tenant %s)", p->hold_id, t->name);
		k->what = strbuf_detach(&what);
		k->it = it;
		memset(&it, 0, sizeof it);
		k->req = r;
		actions_queue_call(c, k);
	} else {
		zuul_admin_request_clear(&r);
	}
out:
	strbuf_free(&why);
	actions_item_clear(&it);
	free(root);
}

void chatops_actions_command(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
			     const struct commands_parsed *p, long long level)
{
	(void)level; /* actions_denial() reads the level itself: confirmations need it again later */
	switch (p->verb) {
	case COMMANDS_RECHECK:
		item_command(c, rs, ev, "recheck", p);
		break;
	case COMMANDS_DEQUEUE:
		item_command(c, rs, ev, "dequeue", p);
		break;
	case COMMANDS_AUTOHOLD:
		item_command(c, rs, ev, "autohold", p);
		break;
	case COMMANDS_AUTOHOLDS:
		tenant_command(c, rs, ev, "autoholds", p);
		break;
	case COMMANDS_AUTOHOLD_DELETE:
		tenant_command(c, rs, ev, "autohold-delete", p);
		break;
	default:
		break;
	}
}

/* ---- reactions ------------------------------------------------------------------------- */

/* 🔁 on a failure: a recheck by the one who reacted. */
static void recheck_reaction(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
			     struct store_failure *f)
{
	struct action_item it;
	if (!actions_failure_item(f, &it))
		return; /* an old failure: a 🔁 there is only a reaction */
	const struct config_actions_tenant *t = config_actions_tenant(&c->cfg->actions, it.tenant);
	struct strbuf why = STRBUF_INIT;
	struct zuul_admin_request r = {0};
	const char *problem = NULL;
	if (actions_denial(c, rs, ev->sender, t, it.tenant, &why)) {
		actions_deny(c, rs, ev, "recheck", &it, f->event_id, strbuf_str(&why));
	} else if (zuul_admin_enqueue(&(struct zuul_admin_item){it.tenant, it.project, it.pipeline, it.change,
								 it.patchset, it.ref},
				      &r, &problem) != 0) {
		actions_deny(c, rs, ev, "recheck", &it, f->event_id, problem);
	} else {
		struct store_action a = {.event_id = (char *)ev->event_id, .kind = "recheck", .room = rs->room,
					 .user_id = (char *)ev->sender, .state = "sent", .created_ms = clock_wall_ms()};
		int rec = store_action_begin(c->store, &a);
		if (rec == 0)
			log_kv(ZLOG_DEBUG, "an action's event was seen before; not acting again", "event_id", ev->event_id,
			       NULL);
		if (rec == 1) {
			struct call *k = actions_call_new("recheck", rs->room, ev->event_id, f->event_id, f->event_id, ev->sender,
						  t->api);
			k->what = actions_describe_action("recheck", &it, NULL);
			k->it = it;
			memset(&it, 0, sizeof it);
			k->req = r;
			memset(&r, 0, sizeof r);
			actions_queue_call(c, k);
		}
	}
	zuul_admin_request_clear(&r);
	strbuf_free(&why);
	actions_item_clear(&it);
}

/* The asker's ✅ on the question of a dequeue or autohold: now it is done. */
static void confirmation(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
			 struct store_action *a)
{
	if (strcmp(a->state, "pending") != 0)
		return; /* done, expired or refused already */
	if (strcmp(ev->sender, a->user_id) != 0) {
		log_kv(ZLOG_INFO, "a confirmation by someone other than the asker is ignored", "sender", ev->sender,
		       "asker", a->user_id, "event_id", ev->event_id, NULL);
		return;
	}
	struct store_action conf = {.event_id = (char *)ev->event_id, .kind = "confirm", .room = rs->room,
				    .user_id = (char *)ev->sender, .state = "confirmed", .created_ms = clock_wall_ms()};
	if (store_action_begin(c->store, &conf) != 1) {
		log_kv(ZLOG_DEBUG, "an action's event was seen before; not acting again", "event_id", ev->event_id, NULL);
		return;
	}
	cJSON *req = cJSON_Parse(a->request_json ? a->request_json : "");
	struct action_item it;
	memset(&it, 0, sizeof it);
	actions_item_from_json(req, &it);
	const char *root = chatops_str_at(req, "root");
	char *what = actions_describe_action(a->kind, &it, req);
	struct strbuf why = STRBUF_INIT;
	const struct config_actions_tenant *t = config_actions_tenant(&c->cfg->actions, it.tenant);
	struct zuul_admin_request r = {0};
	const char *problem = NULL;
	char key[300];
	snprintf(key, sizeof key, "%s|zuul", a->event_id);
	if (clock_wall_ms() > a->expires_ms) {
		store_action_set_state(c->store, a->event_id, "expired");
		actions_audit(a->kind, a->user_id, &it, OUT_DENIED, 0, "confirmed too late", a->event_id);
		actions_count(c, OUT_DENIED);
		strbuf_printf(&why, "The %s was not done: its confirmation came after 5 minutes. Ask again if it is still "
				    "wanted.", what);
		actions_post_notice(c, rs->room, root, a->event_id, key, strbuf_str(&why));
	} else if (actions_denial(c, rs, a->user_id, t, it.tenant, &why) ||
		   actions_build_request(a->kind, &it, req, &r, &problem) != 0) {
		const char *reason = why.len ? strbuf_str(&why) : problem;
		store_action_set_state(c->store, a->event_id, "denied");
		actions_audit(a->kind, a->user_id, &it, OUT_DENIED, 0, reason, a->event_id);
		actions_count(c, OUT_DENIED);
		struct strbuf text = STRBUF_INIT;
		strbuf_printf(&text, "Not done: %s.", reason);
		actions_post_notice(c, rs->room, root, a->event_id, key, strbuf_str(&text));
		strbuf_free(&text);
	} else {
		store_action_set_state(c->store, a->event_id, "sent");
		struct call *k = actions_call_new(a->kind, rs->room, a->event_id, root, a->event_id, a->user_id, t->api);
		k->what = what;
		what = NULL;
		k->it = it;
		memset(&it, 0, sizeof it);
		k->req = r;
		memset(&r, 0, sizeof r);
		actions_queue_call(c, k);
	}
	zuul_admin_request_clear(&r);
	free(what);
	strbuf_free(&why);
	actions_item_clear(&it);
	cJSON_Delete(req);
}

bool chatops_actions_on_reaction(struct chatops *c, struct room_state *rs, const struct sync_event *ev,
				 const cJSON *content)
{
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	const char *rel_type = chatops_str_at(rel, "rel_type"), *target = chatops_str_at(rel, "event_id"),
		   *key = chatops_str_at(rel, "key");
	if (!c->cfg->actions.enabled || !rel_type || strcmp(rel_type, "m.annotation") != 0 || !target || !key)
		return false;
	if (commands_reaction_matches(key, RECHECK_REACTION)) {
		struct store_failure f;
		if (store_failure_by_event(c->store, target, &f) != 1)
			return false;
		if (chatops_room_is(c, f.room, ev->room_id) && actions_is_incident(&f))
			actions_incident_reaction(c, rs, ev, &f);
		else if (chatops_room_is(c, f.room, ev->room_id))
			recheck_reaction(c, rs, ev, &f);
		store_failure_clear(&f);
		return true;
	}
	bool confirms = false;
	for (size_t i = 0; i < sizeof confirm_reactions / sizeof confirm_reactions[0]; i++)
		confirms = confirms || commands_reaction_matches(key, confirm_reactions[i]);
	if (!confirms)
		return false;
	struct store_action a;
	if (store_action_by_question(c->store, target, &a) != 1)
		return false; /* not a question: perhaps a ✅ that resolves a failure */
	if (strcmp(a.room, rs->room) == 0)
		confirmation(c, rs, ev, &a);
	store_action_clear(&a);
	return true;
}
