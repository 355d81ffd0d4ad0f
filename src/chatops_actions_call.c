/* chatops_actions_call: a call to Zuul's admin API on its way: queued for the turn after its
 * acting event's record is committed, sent with a fresh token naming the asker, and its
 * answer said in the thread, audited and counted; and the list of calls (pending at a stop,
 * interrupted, dropped with chatops). What leads to a call is chatops_actions.c's. */
#include "chatops_actions_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "store_actions.h"
#include "strbuf.h"
#include "zuul_admin.h"
#include "zuul_token.h"

/* A token's iat lies this far in the past: Zuul refuses an iat "in the future", and the
 * bridge's clock may run a little ahead of Zuul's. Its exp stays within the lifetime. */
#define TOKEN_BACKDATE_S 5
/* Holds listed by `autoholds`; the rest are counted. */
#define AUTOHOLDS_LIST_MAX 20

/* The calls live in a list hung off the chatops state; kept here so chatops.c need not know
 * their type. */
struct actions_state {
	struct call *calls;
	struct actions_follow *follow; /* chatops_actions_follow.c's */
	bool interrupted_told;         /* the calls the last run left unanswered were told */
};

/* Calls waiting for the next turn (after the commit) or for Zuul's answer; the list is the
 * chatops' own, so chatops_actions_free can drop them. */
static struct call **calls_of(struct chatops *c)
{
	if (!c->actions)
		c->actions = xcalloc(1, sizeof(struct actions_state));
	return &c->actions->calls;
}

static struct zuul_admin_item admin_item(const struct action_item *it)
{
	return (struct zuul_admin_item){it->tenant, it->project, it->pipeline, it->change, it->patchset, it->ref};
}

/* ---- calling Zuul ------------------------------------------------------------------- */

static void call_free(struct call *k)
{
	if (!k)
		return;
	free(k->kind);
	free(k->room);
	free(k->event_id);
	free(k->root);
	free(k->reply_to);
	free(k->user);
	free(k->what);
	free(k->api);
	actions_item_clear(&k->it);
	zuul_admin_request_clear(&k->req);
	free(k);
}

static void call_unlink(struct chatops *c, struct call *k)
{
	for (struct call **p = calls_of(c); *p; p = &(*p)->next)
		if (*p == k) {
			*p = k->next;
			return;
		}
}

/* The `autoholds` answer: one line per hold of the tenant. */
static void describe_holds(const char *tenant, const char *body, struct strbuf *out)
{
	cJSON *list = cJSON_Parse(body ? body : "");
	int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
	if (!cJSON_IsArray(list)) {
		strbuf_printf(out, "Zuul's list of holds of tenant %s could not be read.", tenant);
	} else if (n == 0) {
		strbuf_printf(out, "Tenant %s has no autoholds.", tenant);
	} else {
		strbuf_printf(out, "Autoholds of tenant %s (%d):", tenant, n);
		int shown = 0;
		const cJSON *h;
		cJSON_ArrayForEach(h, list)
		{
			if (shown++ == AUTOHOLDS_LIST_MAX)
				break;
			const cJSON *cur = cJSON_GetObjectItemCaseSensitive(h, "current_count");
			const cJSON *max = cJSON_GetObjectItemCaseSensitive(h, "max_count");
			strbuf_printf(out, "\n- %s: %s %s, ref %s, held %d of %d: %s", chatops_str_at(h, "id") ?: "?",
				      chatops_str_at(h, "project") ?: "?", chatops_str_at(h, "job") ?: "?",
				      chatops_str_at(h, "ref_filter") ?: "?", cJSON_IsNumber(cur) ? cur->valueint : 0,
				      cJSON_IsNumber(max) ? max->valueint : 0, chatops_str_at(h, "reason") ?: "");
		}
		if (n > AUTOHOLDS_LIST_MAX)
			strbuf_printf(out, "\n... and %d more.", n - AUTOHOLDS_LIST_MAX);
	}
	cJSON_Delete(list);
}

static void on_answer(const struct zuul_admin_result *r, void *data)
{
	struct call *k = data;
	struct chatops *c = k->c;
	call_unlink(c, k);
	enum outcome o = r->accepted ? OUT_ACCEPTED : r->status ? OUT_REFUSED : OUT_UNREACHABLE;
	actions_count(c, o);
	actions_audit(k->kind, k->user, &k->it, o, r->status, r->reason, k->event_id);
	if (k->batch) {
		actions_batch_answer(c, k, o, r->reason);
		call_free(k);
		return;
	}
	store_action_set_state(c->store, k->event_id, actions_outcome_names[o]);
	if (o == OUT_ACCEPTED && strcmp(k->kind, "recheck") == 0)
		actions_follow_add(c, k);
	struct strbuf text = STRBUF_INIT;
	if (o == OUT_ACCEPTED && strcmp(k->kind, "autoholds") == 0) {
		describe_holds(k->it.tenant, r->body, &text);
	} else {
		strbuf_printf(&text, "%s asked for the %s: ", k->user, k->what);
		if (o == OUT_ACCEPTED)
			strbuf_puts(&text, strcmp(k->kind, "recheck") == 0
						   ? "accepted by Zuul (queued: its report follows as usual)."
						   : "accepted by Zuul.");
		else if (o == OUT_REFUSED)
			strbuf_printf(&text, "refused by Zuul: %s.", r->reason ? r->reason : "no reason given");
		else
			strbuf_printf(&text, "Zuul could not be reached (%s); nothing was done.",
				      r->reason ? r->reason : "no answer");
	}
	char key[300];
	snprintf(key, sizeof key, "%s|zuul", k->event_id);
	actions_post_notice(c, k->room, k->root, k->reply_to, key, strbuf_str(&text));
	strbuf_free(&text);
	call_free(k);
}

/* Runs in the turn after the action was recorded, so its record is committed: mints the
 * token and sends. */
static void start_call(struct loop *loop, void *data)
{
	(void)loop;
	struct call *k = data;
	struct chatops *c = k->c;
	k->timer = 0;
	const struct config_actions *ac = &c->cfg->actions;
	char why[200] = "";
	struct zuul_token_key *key =
		ac->private_key_pem ? zuul_token_key_parse(ac->private_key_pem, strlen(ac->private_key_pem), why, sizeof why)
				    : NULL;
	struct zuul_token_claims claims = {ac->issuer, ac->audience, k->user,
					   (int64_t)(clock_wall_ms() / 1000) - TOKEN_BACKDATE_S, ZUUL_TOKEN_MAX_LIFETIME_S,
					   NULL};
	char *token = key ? zuul_token_mint(key, &claims) : NULL;
	zuul_token_key_free(key);
	if (!c->zuul)
		c->zuul = zuul_admin_new(c->loop);
	if (token && c->zuul && zuul_admin_send(c->zuul, k->api, &k->req, token, on_answer, k) == 0) {
		explicit_bzero(token, strlen(token));
		free(token);
		return;
	}
	struct zuul_admin_result r = {.reason = token ? "the request could not be started" : "no token could be signed"};
	if (token)
		explicit_bzero(token, strlen(token));
	free(token);
	on_answer(&r, k);
}

/* Hands k to the next turn: the record of its event is committed at this turn's end. */
void actions_queue_call(struct chatops *c, struct call *k)
{
	k->c = c;
	k->next = *calls_of(c);
	*calls_of(c) = k;
	c->host.commit_soon(c->host.data);
	k->timer = loop_timer_add(c->loop, 0, start_call, k);
}

struct call *actions_call_new(const char *kind, const char *room, const char *event_id, const char *root,
			     const char *reply_to, const char *user, const char *api)
{
	struct call *k = xcalloc(1, sizeof *k);
	k->kind = xstrdup(kind);
	k->room = xstrdup(room);
	k->event_id = xstrdup(event_id);
	k->root = xstrdup(root);
	k->reply_to = xstrdup(reply_to);
	k->user = xstrdup(user);
	k->api = xstrdup(api);
	return k;
}

/* The request for kind on item it (dequeue, autohold from a confirmed request). 0 or -1 with why. */
int actions_build_request(const char *kind, const struct action_item *it, const cJSON *req, struct zuul_admin_request *out,
			 const char **why)
{
	struct zuul_admin_item ai = admin_item(it);
	if (strcmp(kind, "recheck") == 0)
		return zuul_admin_enqueue(&ai, out, why);
	if (strcmp(kind, "dequeue") == 0)
		return zuul_admin_dequeue(&ai, out, why);
	if (strcmp(kind, "autohold") == 0) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(req, "count");
		return zuul_admin_autohold(&ai, chatops_str_at(req, "job"), cJSON_IsNumber(n) ? n->valueint : 1,
					   chatops_str_at(req, "reason"), out, why);
	}
	*why = "unknown action";
	return -1;
}

/* ---- life cycle ------------------------------------------------------------------------ */

struct actions_follow **actions_follow_slot(struct chatops *c)
{
	calls_of(c);
	return &c->actions->follow;
}

void chatops_actions_tick(struct chatops *c)
{
	if (!c->cfg->actions.enabled)
		return;
	if (!c->actions || !c->actions->interrupted_told) {
		actions_tell_interrupted(c);
		calls_of(c);
		c->actions->interrupted_told = true;
	}
	actions_follow_tick(c);
}

size_t chatops_actions_pending(struct chatops *c)
{
	size_t n = 0;
	for (const struct call *k = c && c->actions ? c->actions->calls : NULL; k; k = k->next)
		n++;
	return n;
}

void chatops_actions_interrupt(struct chatops *c)
{
	if (!c || !c->actions || !c->actions->calls)
		return;
	/* Their answers can no longer come: the client goes first, so no callback runs on a
	 * call freed here. */
	zuul_admin_free(c->zuul);
	c->zuul = NULL;
	while (c->actions->calls) {
		struct call *k = c->actions->calls;
		c->actions->calls = k->next;
		if (k->timer)
			loop_timer_cancel(c->loop, k->timer);
		actions_record_interrupted(c, k);
		actions_batch_drop(k);
		call_free(k);
	}
}

void chatops_actions_free(struct chatops *c)
{
	/* Calls still waiting for their turn are dropped: their record stays "sent" with no
	 * outcome, and they are never sent (a batch lost to a full disk recreates chatops: the
	 * command is read again from /sync and recorded again). Calls in flight (chatops
	 * switched off by a reload, or recreated) lose their answer with the client: their
	 * record was committed before they started, so they are told as interrupted. At the
	 * daemon's stop chatops_actions_interrupt has taken them all already. */
	zuul_admin_free(c->zuul);
	c->zuul = NULL;
	if (!c->actions)
		return;
	while (c->actions->calls) {
		struct call *k = c->actions->calls;
		c->actions->calls = k->next;
		if (k->timer)
			loop_timer_cancel(c->loop, k->timer);
		else
			actions_record_interrupted(c, k);
		actions_batch_drop(k);
		call_free(k);
	}
	actions_follow_free(c->actions->follow);
	free(c->actions);
	c->actions = NULL;
}
