/* config owners: the owners rules (who is told about which failures, where they are
 * forwarded) and the triage group that groups infrastructure failures into incidents. */
#include "config.h"
#include "config_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The keys of an owners rule and of the triage group, in the order messages list them. */
static const char *const owners_keys[] = {
	"tenants", "pipelines", "projects", "jobs", "users", "forward_room", "forward_after",
	"escalate_after", "runbook", "hint", NULL,
};
static const char *const triage_keys[] = {
	"enabled", "infra_results", "job_window", "job_min_projects", NULL,
};

/* The users of rule e: each a Matrix user id. Returns whether the rule names anyone (or
 * tried to: a bad list is reported here, not again as "nobody to tell"). */
static bool load_owner_users(struct loader *ld, const config_setting_t *e, const char *pfx,
			     struct owners_rule *r)
{
	const config_setting_t *s = config_setting_get_member(e, "users");
	if (!s)
		return false;
	char path[96];
	key_path(path, sizeof path, pfx, "users");
	char **users;
	size_t n;
	if (!get_string_list(ld, s, path, true, &users, &n))
		return true;
	bool ok = true;
	bool single = config_setting_type(s) == CONFIG_TYPE_STRING;
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (rotation_user_id_valid(users[i]))
			continue;
		char at[128];
		if (single)
			snprintf(at, sizeof at, "%s", path);
		else
			snprintf(at, sizeof at, "%s[%zu]", path, i);
		report(ld, single ? s : config_setting_get_elem(s, (unsigned)i),
		       "%s: %s is not a Matrix user id (@localpart:server, localpart of a-z 0-9 ._=-/+)", at,
		       shown(&sb, users[i]));
		ok = false;
	}
	strbuf_free(&sb);
	if (!ok) {
		free_strings(users, n);
		return true;
	}
	r->users = users;
	r->n_users = n;
	return n > 0;
}

static void load_owner_rule(struct loader *ld, const config_setting_t *e, const char *pfx, struct owners_rule *r)
{
	check_keys(ld, e, pfx, owners_keys);
	struct {
		const char *key;
		char ***v;
		size_t *n;
	} fields[] = {
		{"tenants", &r->tenants, &r->n_tenants},
		{"pipelines", &r->pipelines, &r->n_pipelines},
		{"projects", &r->projects, &r->n_projects},
		{"jobs", &r->jobs, &r->n_jobs},
	};
	bool constrained = false;
	for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
		const config_setting_t *s = config_setting_get_member(e, fields[f].key);
		if (!s)
			continue;
		constrained = true;
		char path[96];
		key_path(path, sizeof path, pfx, fields[f].key);
		get_globs(ld, s, path, true, fields[f].v, fields[f].n);
	}
	bool has_users = load_owner_users(ld, e, pfx, r);

	const config_setting_t *rs = config_setting_get_member(e, "forward_room");
	const char *room = NULL;
	if (rs && get_string(ld, e, pfx, "forward_room", &room)) {
		struct strbuf sb = STRBUF_INIT;
		if (room_ok(room))
			r->forward_room = xstrdup(room);
		else
			report(ld, rs, "%s.forward_room: bad room %s (expected a room id \"!id:server\" or alias "
			       "\"#alias:server\")", pfx, shown(&sb, room));
		strbuf_free(&sb);
	}
	const config_setting_t *fa = config_setting_get_member(e, "forward_after");
	if (get_duration(ld, e, pfx, "forward_after", 0, 30LL * 86400, &r->forward_after_s) && fa && !rs)
		report(ld, fa, "%s.forward_after: set without forward_room (expected forward_room = "
		       "\"#team:example.org\"; too, or no forward_after)", pfx);
	r->escalate_after_s = -1;
	get_duration(ld, e, pfx, "escalate_after", 0, 30LL * 86400, &r->escalate_after_s);
	get_runbook(ld, e, pfx, &r->runbook);
	get_hint(ld, e, pfx, &r->hint);

	if (!constrained)
		report(ld, e, "%s: no tenants, pipelines, projects or jobs (expected at least one of them, "
		       "e.g. projects = [\"org/*\"];)", pfx);
	if (!has_users && !rs)
		report(ld, e, "%s: nobody to tell (expected users = [\"@alice:example.org\"]; or "
		       "forward_room = \"#team:example.org\";)", pfx);
}

void load_owners(struct loader *ld, const config_setting_t *root, struct config *cfg)
{
	const config_setting_t *s = config_setting_get_member(root, "owners");
	if (!s)
		return;
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0)) {
		type_error(ld, s, "owners", "a list of groups: owners = ( { projects = [\"org/*\"]; "
			   "users = [\"@alice:example.org\"]; } )");
		return;
	}
	int n = config_setting_length(s);
	if (n == 0)
		return;
	/* Owners are mentioned, reminded and forwarded to by chatops. */
	if (!cfg->chatops.enabled)
		report(ld, s, "owners: set, but chatops.enabled is false (expected the room side on, which "
		       "mentions the owners)");
	struct owners_config *oc = &cfg->owners;
	oc->rules = xcalloc((size_t)n, sizeof *oc->rules);
	oc->n_rules = (size_t)n;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct owners_rule *r = &oc->rules[i];
		char pfx[48];
		snprintf(pfx, sizeof pfx, "owners[%d]", i);
		r->line = config_setting_source_line(e);
		r->escalate_after_s = -1;
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			type_error(ld, e, pfx, "a group { projects = [\"org/*\"]; users = [\"@alice:example.org\"]; }");
			continue;
		}
		load_owner_rule(ld, e, pfx, r);
	}
}

/* ---- triage ------------------------------------------------------------------ */

static const char *const default_infra_results[] = {
	"NODE_FAILURE", "RETRY_LIMIT", "POST_FAILURE", "DISK_FULL", "LOST", "EXCEPTION", "ERROR", NULL,
};

/* Zuul's build results are upper-case words: anything else can never match one. */
static bool result_word_ok(const char *v)
{
	if (!*v)
		return false;
	for (const char *p = v; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || *p == '_'))
			return false;
	return true;
}

void load_triage(struct loader *ld, const config_setting_t *root, struct config_triage *tr)
{
	tr->enabled = true;
	tr->job_window_s = 1800;
	tr->job_min_projects = 3;
	const config_setting_t *grp = get_group(ld, root, NULL, "triage");
	if (grp) {
		const char *pfx = "triage";
		tr->configured = true;
		check_keys(ld, grp, pfx, triage_keys);
		get_bool(ld, grp, pfx, "enabled", &tr->enabled);
		const config_setting_t *s = config_setting_get_member(grp, "infra_results");
		char **v;
		size_t n;
		if (s && get_string_list(ld, s, "triage.infra_results", true, &v, &n)) {
			bool ok = true;
			if (n == 0) {
				report(ld, s, "triage.infra_results: empty list (expected at least one build result "
				       "such as \"NODE_FAILURE\"; remove the key for the default list)");
				ok = false;
			}
			bool single = config_setting_type(s) == CONFIG_TYPE_STRING;
			struct strbuf sb = STRBUF_INIT;
			for (size_t i = 0; i < n; i++) {
				if (result_word_ok(v[i]))
					continue;
				char at[48];
				if (single)
					snprintf(at, sizeof at, "triage.infra_results");
				else
					snprintf(at, sizeof at, "triage.infra_results[%zu]", i);
				report(ld, single ? s : config_setting_get_elem(s, (unsigned)i),
				       "%s: bad result %s (expected an upper-case build result of A-Z and _, "
				       "e.g. \"NODE_FAILURE\")", at, shown(&sb, v[i]));
				ok = false;
			}
			strbuf_free(&sb);
			if (ok) {
				tr->infra_results = v;
				tr->n_infra_results = n;
			} else {
				free_strings(v, n);
			}
		}
		get_duration(ld, grp, pfx, "job_window", 60, 86400, &tr->job_window_s);
		get_int(ld, grp, pfx, "job_min_projects", 2, 1000, &tr->job_min_projects);
	}
	if (!tr->infra_results) {
		size_t n = 0;
		while (default_infra_results[n])
			n++;
		tr->infra_results = xcalloc(n, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			tr->infra_results[i] = xstrdup(default_infra_results[i]);
		tr->n_infra_results = n;
	}
}
