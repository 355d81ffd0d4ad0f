/* config: the libconfig file turned into struct config, every value checked.
 * All problems are collected as "FILE:LINE: what (expected)" so an operator fixes them in one pass.
 * This file reads the groups in order (load_root); each group's own file checks it, with
 * the getters they share in config_getters.c. */
#include "config.h"
#include "config_internal.h"

#include "build_config.h"
#include "log.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The keys of the top level, in the order messages list them; each group's own list
 * sits beside its loader, all_keys names them all. */
static const char *const top_keys[] = {
	"state_dir", "template_dir", "log_level", "dedup_retention", "mqtt", "matrix", "routes", "metrics",
	"chatops", "owners", "triage", "details", "actions", NULL,
};

static const char *const all_keys[] = {
	"state_dir", "template_dir", "log_level", "dedup_retention",
	"mqtt", "mqtt.host", "mqtt.port", "mqtt.client_id", "mqtt.username", "mqtt.password_file",
	"mqtt.qos", "mqtt.clean_session", "mqtt.keepalive", "mqtt.protocol", "mqtt.receive_maximum",
	"mqtt.maximum_packet_size",
	"mqtt.share_group",
	"mqtt.topics", "mqtt.reconnect_min", "mqtt.reconnect_max",
	"mqtt.tls", "mqtt.tls.ca_file", "mqtt.tls.ca_dir", "mqtt.tls.cert_file", "mqtt.tls.key_file",
	"mqtt.tls.verify",
	"matrix", "matrix.homeserver", "matrix.access_token_file", "matrix.user", "matrix.password_file",
	"matrix.insecure_skip_tls_verify",
	"matrix.request_timeout", "matrix.retry_min", "matrix.retry_max", "matrix.post_unencrypted",
	"routes", "routes.name", "routes.room", "routes.template",
	"routes.match", "routes.match.tenants", "routes.match.pipelines", "routes.match.projects",
	"routes.match.branches", "routes.match.actions", "routes.match.buildset_results",
	"routes.match.build_results",
	"routes.exclude", "routes.exclude.tenants", "routes.exclude.pipelines",
	"routes.exclude.projects", "routes.exclude.branches", "routes.exclude.actions",
	"routes.exclude.buildset_results", "routes.exclude.build_results",
	"metrics", "metrics.listen", "metrics.port",
	"routes.edit_start", "routes.mention_oncall", "routes.runbook", "routes.hint", "routes.digest_at",
	"routes.digest_timezone",
	"chatops", "chatops.enabled", "chatops.claims", "chatops.commands", "chatops.claim_reaction", "chatops.resolve_reaction", "chatops.command_prefix",
	"chatops.command_power_level", "chatops.threads", "chatops.escalate_after",
	"chatops.fallback_after", "chatops.fallback",
	"chatops.oncall", "chatops.oncall.members", "chatops.oncall.shift", "chatops.oncall.handover",
	"chatops.oncall.timezone", "chatops.oncall.start", "chatops.oncall.overrides",
	"chatops.oncall.overrides.from", "chatops.oncall.overrides.to", "chatops.oncall.overrides.user",
	"chatops.workflow", "chatops.workflow_file", "chatops.catch_up_after", "chatops.topic", "chatops.topic_note",
	"owners", "owners.tenants", "owners.pipelines", "owners.projects", "owners.jobs", "owners.users",
	"owners.forward_room", "owners.forward_after", "owners.escalate_after", "owners.runbook",
	"owners.hint",
	"triage", "triage.enabled", "triage.infra_results", "triage.job_window", "triage.job_min_projects",
	"details", "details.hosts", "details.timeout", "details.max_download", "details.max_output",
	"actions", "actions.issuer", "actions.audience", "actions.private_key_file", "actions.tenants",
	"actions.tenants.name", "actions.tenants.api", "actions.tenants.users",
	NULL,
};

const char *const *config_all_keys(void)
{
	return all_keys;
}

/* The matrix keys that say how the bridge logs in must agree: an access token, or a
 * user with a password, never both. False after reporting. */
static bool check_matrix_login(struct loader *ld, const config_setting_t *mx, const char *token_path,
			       const char *password_path)
{
	const config_setting_t *user = config_setting_get_member(mx, "user");
	const config_setting_t *token = config_setting_get_member(mx, "access_token_file");
	const config_setting_t *password = config_setting_get_member(mx, "password_file");
	if (user && token_path) {
		report(ld, user, "matrix.user: access_token_file is set too, at line %d (expected either an "
				 "access token or matrix.user with a password, not both)",
		       config_setting_source_line(token));
		return false;
	}
	if (password_path && !user) {
		report(ld, password, "matrix.password_file: a password without a user (expected matrix.user too)");
		return false;
	}
	return true;
}

static void load_root(struct loader *ld, const config_setting_t *root, unsigned flags, struct config *cfg)
{
	check_keys(ld, root, NULL, top_keys);

	cfg->state_dir = xstrdup(ZMB_STATE_DIR);
	get_path(ld, root, NULL, "state_dir", &cfg->state_dir);
	cfg->template_dir = xstrdup(ZMB_TEMPLATE_DIR);
	bool template_dir_ok = get_path(ld, root, NULL, "template_dir", &cfg->template_dir);

	cfg->log_level = ZLOG_INFO;
	const char *lvl = NULL;
	if (get_string(ld, root, NULL, "log_level", &lvl) && lvl) {
		int l = log_level_parse(lvl);
		if (l < 0)
			report(ld, config_setting_get_member(root, "log_level"),
			       "log_level: bad log level \"%s\" (expected \"error\", \"warn\", \"info\" or \"debug\")", lvl);
		else
			cfg->log_level = l;
	}
	long long keep = 7LL * 86400;
	get_duration(ld, root, NULL, "dedup_retention", 0, INT_MAX, &keep);
	cfg->dedup_retention_s = (int)keep;

	const config_setting_t *mq = get_group(ld, root, NULL, "mqtt");
	load_mqtt(ld, mq, &cfg->mqtt);

	const config_setting_t *mx = config_setting_get_member(root, "matrix");
	if (!mx)
		report(ld, NULL, "matrix: missing (expected matrix: { homeserver = \"https://...\"; })");
	else if ((mx = get_group(ld, root, NULL, "matrix")))
		load_matrix(ld, mx, &cfg->matrix);

	const config_setting_t *mt = get_group(ld, root, NULL, "metrics");
	if (mt)
		load_metrics(ld, mt, &cfg->metrics);

	/* A template_dir that is itself wrong would make every template look missing. */
	load_routes(ld, root, template_dir_ok ? cfg->template_dir : NULL, cfg);
	load_chatops_all(ld, root, cfg);
	load_owners(ld, root, cfg);
	load_triage(ld, root, &cfg->triage);
	load_details(ld, root, &cfg->details);
	load_actions(ld, root, flags, cfg);
	/* Incidents are messages of the room side: without it, failures are posted plainly. */
	if (!cfg->chatops.enabled)
		cfg->triage.enabled = false;
	check_post_unencrypted(ld, mx, cfg);

	/* The secret file names are checked always, the files read only on request. */
	char *token_path = NULL, *password_path = NULL, *matrix_password_path = NULL;
	bool files_ok = true;
	if (mx) {
		files_ok &= get_path(ld, mx, "matrix", "access_token_file", &token_path);
		files_ok &= get_path(ld, mx, "matrix", "password_file", &matrix_password_path);
		files_ok &= check_matrix_login(ld, mx, token_path, matrix_password_path);
	}
	if (mq)
		files_ok &= get_path(ld, mq, "mqtt", "password_file", &password_path);
	if (password_path && !cfg->mqtt.username)
		report(ld, config_setting_get_member(mq, "password_file"),
		       "mqtt.password_file: a password without a user name (expected mqtt.username too)");
	/* After a wrong key type, "no access token" would only repeat the problem. */
	if ((flags & CONFIG_NEED_SECRETS) && files_ok)
		load_secrets(ld, root, cfg, token_path, password_path, matrix_password_path);
	free(token_path);
	free(password_path);
	free(matrix_password_path);
}

struct config *config_load(const char *path, unsigned flags, struct strbuf *errors)
{
	int err = check_readable_file(path);
	if (err) {
		strbuf_printf(errors, "%s: cannot read: %s\n", path, strerror(err));
		return NULL;
	}
	struct loader ld = {.path = path};
	ld.dir = config_dir(path);
	if (!ld.dir) {
		strbuf_printf(errors, "%s: cannot resolve relative paths: %s\n", path, strerror(errno));
		return NULL;
	}

	config_t cf;
	config_init(&cf);
	/* @include "x" is relative to the config file, like every other path in it. */
	config_set_include_dir(&cf, ld.dir);
	if (!config_read_file(&cf, path)) {
		if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
			strbuf_printf(errors, "%s: cannot read: %s\n", path, config_error_text(&cf));
		else
			strbuf_printf(errors, "%s:%d: %s (expected libconfig syntax: name = value; groups in "
					      "{ }, lists in ( ), arrays in [ ])\n",
				      config_error_file(&cf) ? config_error_file(&cf) : path,
				      config_error_line(&cf), config_error_text(&cf));
		config_destroy(&cf);
		free(ld.dir);
		return NULL;
	}

	struct config *cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	load_root(&ld, config_root_setting(&cf), flags, cfg);
	config_destroy(&cf);

	if (ld.n_errors) {
		flush_errors(&ld, errors);
		config_free(cfg);
		cfg = NULL;
	}
	for (size_t i = 0; i < ld.n_redact; i++)
		secret_free(ld.redact[i]);
	free(ld.redact);
	free(ld.dir);
	return cfg;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->mqtt.host);
	free(cfg->mqtt.client_id);
	free(cfg->mqtt.username);
	secret_free(cfg->mqtt.password);
	free(cfg->mqtt.share_group);
	free_strings(cfg->mqtt.topics, cfg->mqtt.n_topics);
	free(cfg->mqtt.tls.ca_file);
	free(cfg->mqtt.tls.ca_dir);
	free(cfg->mqtt.tls.cert_file);
	free(cfg->mqtt.tls.key_file);
	free(cfg->matrix.homeserver);
	secret_free(cfg->matrix.access_token);
	free(cfg->matrix.user);
	free_strings(cfg->matrix.post_unencrypted, cfg->matrix.n_post_unencrypted);
	secret_free(cfg->matrix.password);
	free(cfg->state_dir);
	free(cfg->template_dir);
	free(cfg->metrics.listen);
	for (size_t i = 0; i < cfg->n_routes; i++)
		route_clear(&cfg->routes[i]);
	free(cfg->routes);
	free(cfg->chatops.claim_reaction);
	free(cfg->chatops.resolve_reaction);
	free(cfg->chatops.command_prefix);
	free(cfg->chatops.workflow);
	free(cfg->chatops.topic_note);
	rotation_config_free(&cfg->chatops.rotation);
	for (size_t i = 0; cfg->route_chatops && i < cfg->n_routes; i++) {
		free(cfg->route_chatops[i].runbook);
		free(cfg->route_chatops[i].hint);
		free(cfg->route_chatops[i].digest_timezone);
	}
	free(cfg->route_chatops);
	owners_config_clear(&cfg->owners);
	free_strings(cfg->triage.infra_results, cfg->triage.n_infra_results);
	free_strings(cfg->details.hosts, cfg->details.n_hosts);
	actions_clear(&cfg->actions);
	free(cfg);
}
