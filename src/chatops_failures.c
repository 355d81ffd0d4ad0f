/* chatops_failures: failure messages the room can claim: the marker, owners and mentions,
 * threads of repeats, recovery, claim and resolve reactions and the edits that show them. */
#include "chatops_internal.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "commands.h"
#include "log.h"
#include "relations.h"
#include "rotation.h"
#include "strbuf.h"

/* Actions that report a problem: the ones a mute silences. */
bool chatops_is_failure_action(const char *action)
{
	static const char *const failures[] = {"failure", "merge-conflict", "merge-failure", "config-error"};
	for (size_t i = 0; action && i < sizeof failures / sizeof failures[0]; i++)
		if (strcmp(action, failures[i]) == 0)
			return true;
	return false;
}

void chatops_find_owners(const struct config *cfg, const struct zuul_event *ev, struct chatops_owners *out)
{
	out->n = 0;
	if (!cfg->owners.n_rules || !chatops_is_failure_action(ev->action))
		return;
	struct owners_subject subj = {.tenant = ev->tenant, .pipeline = ev->pipeline, .project = ev->item.project};
	size_t failed = 0;
	for (size_t i = 0; i <= ev->n_builds && out->n < CHATOPS_OWNERS_MAX; i++) {
		if (i < ev->n_builds) {
			if (!zuul_build_failed(&ev->builds[i]))
				continue;
			failed++;
			subj.job = ev->builds[i].job_name;
			subj.project = zuul_build_change(ev, &ev->builds[i])->project;
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
	if (!c || !chatops_is_failure_action(ev->action))
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


/* ---- claims ---------------------------------------------------------------- */

/* "project|branch|pipeline|" : the part of a thread key a success of that change recovers. */
static void thread_prefix(const struct zuul_event *ev, const struct zuul_change *c, struct strbuf *out)
{
	strbuf_printf(out, "%s|%s|%s|", c->project ? c->project : "", c->branch ? c->branch : "",
		      ev->pipeline ? ev->pipeline : "");
}

/* The change a failure is filed under: the one its failed builds tested, when they all
 * tested one (a dependency cycle's failure of org/b's job is org/b's, though Zuul
 * reports the item under org/a); else the item's first change. */
static const struct zuul_change *failed_change(const struct zuul_event *ev)
{
	const struct zuul_change *only = NULL;
	for (size_t i = 0; i < ev->n_builds; i++) {
		if (!zuul_build_failed(&ev->builds[i]))
			continue;
		const struct zuul_change *c = zuul_build_change(ev, &ev->builds[i]);
		if (!only)
			only = c;
		else if (strcmp(only->project, c->project) != 0 ||
			 strcmp(only->branch ? only->branch : "", c->branch ? c->branch : "") != 0)
			return &ev->item;
	}
	return only ? only : &ev->item;
}

/* The thread prefixes a success ends: one per distinct change of the item (a cycle
 * succeeds as one). Caller frees each and the array. */
static char **success_prefixes(const struct zuul_event *ev, size_t *n)
{
	size_t nc = ev->n_changes ? ev->n_changes : 1;
	char **out = xcalloc(nc, sizeof *out);
	*n = 0;
	for (size_t i = 0; i < nc; i++) {
		struct strbuf sb = STRBUF_INIT;
		thread_prefix(ev, ev->n_changes ? &ev->changes[i] : &ev->item, &sb);
		bool seen = false;
		for (size_t j = 0; j < *n && !seen; j++)
			seen = strcmp(out[j], strbuf_str(&sb)) == 0;
		if (seen)
			strbuf_free(&sb);
		else
			out[(*n)++] = strbuf_detach(&sb);
	}
	return out;
}

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
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
	thread_prefix(ev, failed_change(ev), &sb);
	const char **jobs = xcalloc(ev->n_builds ? ev->n_builds : 1, sizeof *jobs);
	size_t n = 0;
	for (size_t i = 0; i < ev->n_builds; i++)
		if (zuul_build_failed(&ev->builds[i]))
			jobs[n++] = ev->builds[i].job_name ? ev->builds[i].job_name : "";
	qsort(jobs, n, sizeof *jobs, cmp_str);
	for (size_t i = 0; i < n; i++)
		strbuf_printf(&sb, "%s%s", i ? "," : "", jobs[i]);
	free(jobs);
	return strbuf_detach(&sb);
}

/* Facts for disposition.h: the open failure of route that ev repeats (same project,
 * branch, pipeline and failed jobs). 1 and *out filled, or 0. */
static int open_failure_repeated(struct chatops *c, const char *route, const struct zuul_event *ev,
				 struct store_failure *out)
{
	if (!c->cfg->chatops.threads || !chatops_is_failure_action(ev->action))
		return 0;
	char *key = thread_key(ev);
	int rc = store_failure_open_by_key(c->store, route, key, out);
	free(key);
	return rc == 1;
}

/* Facts for disposition.h: how many open failures of route a success ends, how many of
 * them came and went unposted while away, and the oldest (kept in *oldest). */
static void streaks_ended(struct chatops *c, const char *route, const struct zuul_event *ev,
			  struct disposition_facts *facts, struct store_failure *oldest)
{
	if (!ev->action || strcmp(ev->action, "success") != 0)
		return;
	size_t np;
	char **prefixes = success_prefixes(ev, &np);
	for (size_t p = 0; p < np; p++) {
		struct store_failure *open;
		size_t n;
		if (store_failures_open_by_prefix(c->store, route, prefixes[p], &open, &n) != 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			if (facts->away && !open[i].event_id && open[i].opened_ms >= c->away_since_ms)
				facts->streaks_unposted++;
			if (facts->streaks_open == 0 && i == 0)
				*oldest = open[i];
			else
				store_failure_clear(&open[i]);
		}
		facts->streaks_open += n;
		free(open);
	}
	free_strings(prefixes, np);
}

void chatops_failure_facts(struct chatops *c, const char *route, const struct zuul_event *ev,
			   struct disposition_facts *facts, struct chatops_facts *own)
{
	facts->failure = chatops_is_failure_action(ev->action);
	streaks_ended(c, route, ev, facts, &own->streak);
	if (facts->streaks_open)
		facts->streak = (struct disposition_failure){own->streak.txn_id, own->streak.event_id, own->streak.count,
							     own->streak.opened_ms};
	if (open_failure_repeated(c, route, ev, &own->repeat)) {
		facts->has_repeat = true;
		facts->repeat = (struct disposition_failure){own->repeat.txn_id, own->repeat.event_id, own->repeat.count,
							     own->repeat.opened_ms};
	}
}

cJSON *chatops_marker_new(const char *txn, const char *route, const char *key, const char *thread_key)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddNumberToObject(m, "v", 1);
	cJSON_AddStringToObject(m, "txn", txn);
	cJSON_AddStringToObject(m, "route", route);
	cJSON_AddStringToObject(m, "key", key);
	cJSON_AddStringToObject(m, "thread_key", thread_key);
	cJSON_AddNumberToObject(m, "opened_ms", (double)clock_wall_ms());
	cJSON_AddNumberToObject(m, "count", 1);
	cJSON_AddNumberToObject(m, "recovered_ms", 0);
	cJSON_AddNumberToObject(m, "escalated", 0);
	return m;
}

void chatops_mark_failure(struct chatops *c, const struct zuul_event *ev, const char *txn, const char *route,
			  const char *key, const struct chatops_owners *owners, cJSON *content)
{
	if (!c || !chatops_is_failure_action(ev->action))
		return;
	char *tkey = thread_key(ev);
	cJSON *m = chatops_marker_new(txn, route, key, tkey);
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
	chatops_marker_add_item(m, ev);
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
	if (!c || !chatops_is_failure_action(ev->action))
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


void chatops_repeat_queued(struct chatops *c, const char *root_txn, const char *txn)
{
	if (!c)
		return;
	store_failure_bump(c->store, root_txn, clock_wall_ms());
	struct store_failure f;
	if (store_failure_by_txn(c->store, root_txn, &f) == 1)
		chatops_post_claim_edit(c, &f, txn);
	store_failure_clear(&f);
}

void chatops_close_streaks(struct chatops *c, const char *route, const struct zuul_event *ev)
{
	if (!c || !ev->action || strcmp(ev->action, "success") != 0)
		return;
	bool away = c->away_since_ms > 0;
	size_t np, summarised = 0;
	char **prefixes = success_prefixes(ev, &np);
	for (size_t p = 0; p < np; p++) {
		struct store_failure *open;
		size_t n;
		if (store_failures_open_by_prefix(c->store, route, prefixes[p], &open, &n) != 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			struct store_failure *f = &open[i];
			store_failure_recover(c->store, f->txn_id, clock_wall_ms());
			f->recovered_ms = clock_wall_ms();
			if (away && !f->event_id && f->opened_ms >= c->away_since_ms) {
				/* Failed and recovered while the bridge was away, never posted: the
				 * catch-up summary tells it instead (each repeat counted). */
				struct strbuf what = STRBUF_INIT;
				chatops_describe_thread_key(f->thread_key, &what);
				for (int64_t k = 0; k < (f->count > 0 ? f->count : 1) && k < 1000; k++)
					chatops_catchup_add_report(c, f->room, route, "failure", f->thread_key, strbuf_str(&what),
							   k == 0 ? f->opened_ms : f->last_ms);
				cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(c->catchup, "skip"), f->txn_id,
							(double)clock_wall_ms());
				strbuf_free(&what);
				summarised++;
				log_kv(ZLOG_INFO, "failure recovered while away; left to the catch-up summary", "room",
				       f->room, "route", route, "key", f->event_key, NULL);
				if (summarised == 1) {
					/* the success closes the pair; it is not posted either */
					chatops_catchup_add_report(c, f->room, route, "success", f->thread_key, prefixes[p],
							   clock_wall_ms());
				}
				store_failure_clear(f);
				continue;
			}
			if (!c->cfg->chatops.threads) {
				store_failure_clear(f);
				continue;
			}
			cJSON *notice = chatops_notice_new("\u2705 Recovered: the next run succeeded.");
			relations_make_thread_reply(notice, f->event_id, NULL);
			if (!f->event_id)
				relations_point_at_txn(notice, f->txn_id);
			char key[300];
			snprintf(key, sizeof key, "%s|recovered", f->txn_id);
			c->host.post(f->room, "recovered", key, notice, c->host.data);
			cJSON_Delete(notice);
			chatops_post_claim_edit(c, f, "recovered");
			log_kv(ZLOG_INFO, "failure recovered", "room", f->room, "route", route, "key", f->event_key, NULL);
			store_failure_clear(f);
		}
		free(open);
	}
	if (summarised)
		chatops_catchup_save(c);
	free_strings(prefixes, np);
}

void chatops_delivered(struct chatops *c, const char *txn, const char *event_id)
{
	/* A forward waits for the failure's event id to link to it: look again now. */
	if (c && store_failure_set_event(c->store, txn, event_id) == 1)
		c->next_escalation_ms = 0;
}

/* Appends "@a, @b" as pills (html) and plain ids (text). */
void chatops_list_users(char **users, size_t n, struct strbuf *html, struct strbuf *text)
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

void chatops_free_users(char **users, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(users[i]);
	free(users);
}

/* Edits the failure's message to show its stored content under who claimed and who
 * resolved it, as it stands now. `change` (the reaction or redaction event) makes each edit
 * its own transaction. say_unclaimed: an open failure nobody holds says "Unclaimed" (a
 * claim edit does; the details edit keeps a message nobody touched as it was). */
static void claim_state_edit(struct chatops *c, const struct store_failure *f, const char *change, bool say_unclaimed,
			     const char *log_message)
{
	char **claimers = NULL, **resolvers = NULL;
	size_t n_claim = 0, n_resolve = 0;
	if (store_claims_of(c->store, f->txn_id, "claim", &claimers, &n_claim) != 0 ||
	    store_claims_of(c->store, f->txn_id, "resolve", &resolvers, &n_resolve) != 0) {
		chatops_free_users(claimers, n_claim);
		return;
	}
	cJSON *content = cJSON_Parse(f->content_json);
	if (!cJSON_IsObject(content)) {
		cJSON_Delete(content);
		chatops_free_users(claimers, n_claim);
		chatops_free_users(resolvers, n_resolve);
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
		chatops_list_users(resolvers, n_resolve, &html, &text);
		strbuf_puts(&html, "</p>");
		strbuf_putc(&text, '\n');
	}
	if (n_claim) {
		strbuf_printf(&html, "<p>%s <b>Claimed</b> by ", c->cfg->chatops.claim_reaction);
		strbuf_printf(&text, "%s Claimed by ", c->cfg->chatops.claim_reaction);
		chatops_list_users(claimers, n_claim, &html, &text);
		strbuf_puts(&html, "</p>");
		strbuf_putc(&text, '\n');
	} else if (!f->recovered_ms && !n_resolve && say_unclaimed) {
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
	const char *old_html = chatops_str_at(content, "formatted_body");
	const char *old_text = chatops_str_at(content, "body");
	strbuf_puts(&html, old_html ? old_html : "");
	strbuf_puts(&text, old_text ? old_text : "");
	cJSON_ReplaceItemInObjectCaseSensitive(content, "formatted_body", cJSON_CreateString(strbuf_str(&html)));
	cJSON_ReplaceItemInObjectCaseSensitive(content, "body", cJSON_CreateString(strbuf_str(&text)));
	/* An edit that shows claims pings nobody: whoever the original mentions was pinged by
	 * it, and stays mentioned in the new content (the spec's resolved mentions). */
	marker_update(content, f);
	const char **pinged = relations_mentioned_new(content);
	cJSON *edit = relations_edit_new(content, f->event_id, pinged);
	free(pinged);
	if (!f->event_id) /* queued moments ago: the deliverer fills the id in */
		relations_point_at_txn(edit, f->txn_id);
	char key[300];
	snprintf(key, sizeof key, "%s|%s", f->txn_id, change);
	c->host.post(f->room, "edit", key, edit, c->host.data);
	log_kv(ZLOG_INFO, log_message, "room", f->room,
	       "route", f->route, "key", f->event_key, "claimed", n_claim ? claimers[0] : NULL, "resolved",
	       n_resolve ? resolvers[0] : NULL, NULL);
	cJSON_Delete(edit);
	cJSON_Delete(content);
	strbuf_free(&html);
	strbuf_free(&text);
	chatops_free_users(claimers, n_claim);
	chatops_free_users(resolvers, n_resolve);
}

void chatops_post_claim_edit(struct chatops *c, const struct store_failure *f, const char *change)
{
	claim_state_edit(c, f, change, true, "failure claim state edited");
}

int chatops_failure_rerendered(struct chatops *c, const char *txn, const cJSON *content, const char *change)
{
	struct store_failure f;
	memset(&f, 0, sizeof f);
	if (!c || !txn || store_failure_by_txn(c->store, txn, &f) != 1) {
		store_failure_clear(&f);
		return 0;
	}
	cJSON *stored = cJSON_Parse(f.content_json);
	if (!cJSON_IsObject(stored)) {
		cJSON_Delete(stored);
		store_failure_clear(&f);
		return 0;
	}
	/* The words are new; whom it mentions and its marker are the failure's own. */
	static const char *const rendered[] = {"body", "formatted_body"};
	for (size_t i = 0; i < sizeof rendered / sizeof rendered[0]; i++) {
		const char *v = chatops_str_at(content, rendered[i]);
		if (v)
			cJSON_ReplaceItemInObjectCaseSensitive(stored, rendered[i], cJSON_CreateString(v));
	}
	/* Stored first: the claim edits that follow are made from it, and keep what it says. */
	char *json = cJSON_PrintUnformatted(stored);
	store_failure_set_content(c->store, txn, json);
	free(f.content_json);
	f.content_json = xstrdup(json);
	cJSON_free(json);
	cJSON_Delete(stored);
	/* Repeated already: its last edit said "Unclaimed" with the count, and so does this one. */
	claim_state_edit(c, &f, change, f.count > 1, "failure message edited with its new words");
	store_failure_clear(&f);
	return 1;
}

/* A reaction counts only in the room of the failure it names: event ids are unique across
 * rooms, so a ✅ sent elsewhere naming a failure's id would otherwise resolve it from a room
 * whose members the failure's room never chose. */
void chatops_on_reaction(struct chatops *c, const struct room_state *rs, const struct sync_event *ev,
			 const cJSON *content)
{
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(content, "m.relates_to");
	const char *rel_type = chatops_str_at(rel, "rel_type"), *target = chatops_str_at(rel, "event_id"), *key = chatops_str_at(rel, "key");
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
	if (!chatops_room_is(c, f.room, ev->room_id))
		log_kv(ZLOG_WARN, "a reaction to a failure of another room is ignored", "room", rs->room, "sender",
		       ev->sender, "event_id", ev->event_id, "failure_room", f.room, NULL);
	else if (store_claim_add(c->store, ev->event_id, f.txn_id, ev->sender, kind, clock_wall_ms()) == 1)
		chatops_post_claim_edit(c, &f, ev->event_id);
	store_failure_clear(&f);
}

/* Whether a redaction in rs takes the claim back: it must be in the claim's own room (a
 * redaction elsewhere removes nothing here), and stand as the homeserver applies it: by
 * the reaction's sender, or by a moderator at the room's redact level. Then the reaction
 * is gone from the room for every client and for a rebuild, so the claim goes too. */
static bool redaction_unclaims(const struct chatops *c, const struct room_state *rs, const struct sync_event *ev,
			       const struct store_claim *cl)
{
	if (!chatops_room_is(c, cl->room, ev->room_id))
		return false;
	long long level = commands_creator_outranks(rs->create_content, rs->creator, ev->sender)
				  ? LLONG_MAX
				  : commands_user_level(rs->power_levels, ev->sender, rs->creator);
	return commands_redaction_stands(ev->sender, level, cl->user_id, commands_redact_level(rs->power_levels));
}

void chatops_on_redaction(struct chatops *c, const struct room_state *rs, const struct sync_event *ev,
			  const cJSON *content)
{
	/* Room versions up to 10 carry the redacted id at the top level, 11 in the content. */
	const char *redacts = chatops_str_at(ev->event, "redacts") ? chatops_str_at(ev->event, "redacts") : chatops_str_at(content, "redacts");
	struct store_claim cl;
	if (!redacts || store_claim_get(c->store, redacts, &cl) != 1)
		return; /* not one of the claims or resolves recorded */
	bool unclaims = redaction_unclaims(c, rs, ev, &cl);
	if (!unclaims)
		log_kv(ZLOG_WARN, "a redaction of a claim is ignored: another room, or a sender without the power",
		       "room", rs->room, "sender", ev->sender, "event_id", ev->event_id, "claimer", cl.user_id,
		       "failure_room", cl.room, NULL);
	store_claim_clear(&cl);
	char *txn = unclaims ? store_claim_remove(c->store, redacts) : NULL;
	if (!txn)
		return;
	c->next_escalation_ms = 0; /* unclaimed again: its escalation resumes */
	struct store_failure f;
	if (store_failure_by_txn(c->store, txn, &f) == 1 && f.event_id)
		chatops_post_claim_edit(c, &f, ev->event_id);
	store_failure_clear(&f);
	free(txn);
}
