/* config: the libconfig file turned into struct config, every value checked.
 * All problems are collected as "FILE:LINE: what (expected)" so an operator fixes them in one pass. */
#include "config.h"
#include "config_internal.h"

#include "build_config.h"
#include "details_url.h"
#include "duration.h"
#include "log.h"
#include "redact.h"
#include "zuul_token.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Secrets larger than this are not tokens or passwords but a wrong file. */
#define SECRET_MAX 16384

/* The keys each group accepts, in the order messages list them. The keys of
 * match/exclude come from route_field_key() so route owns that vocabulary. */
static const char *const top_keys[] = {
	"state_dir", "template_dir", "log_level", "dedup_retention", "mqtt", "matrix", "routes", "metrics",
	"chatops", "owners", "triage", "details", "actions", NULL,
};

static const char *const actions_keys[] = {
	"issuer", "audience", "private_key_file", "tenants", NULL,
};
static const char *const actions_tenant_keys[] = {
	"name", "api", "users", NULL,
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
	"chatops.workflow", "chatops.workflow_file", "chatops.catch_up_after",
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

/* ---- actions (issue #17) --------------------------------------------------------- */

/* Zuul's tenant names as they appear in its URLs: anything else is a typo, and would
 * need quoting in every path. */
static bool tenant_name_ok(const char *name)
{
	if (!*name || strlen(name) > 200)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_' || *p == '.'))
			return false;
	return true;
}

/* issuer and audience go into every token and must equal Zuul's [auth] settings exactly. */
static void get_claim(struct loader *ld, const config_setting_t *grp, const char *key, const char *example,
		      char **out)
{
	const config_setting_t *s = config_setting_get_member(grp, key);
	if (!s) {
		report(ld, grp, "actions.%s: missing (expected %s = \"%s\";, as Zuul's [auth] section has it)", key, key,
		       example);
		return;
	}
	const char *v = NULL;
	char path[64], expected[128];
	snprintf(path, sizeof path, "actions.%s", key);
	snprintf(expected, sizeof expected, "Zuul's [auth] %s, e.g. \"%s\"", strcmp(key, "issuer") == 0 ? "issuer_id" : "client_id",
		 example);
	if (!get_nonempty(ld, grp, "actions", key, expected, &v) || !v)
		return;
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			struct strbuf sb = STRBUF_INIT;
			report(ld, s, "%s: %s has control characters (expected text like \"%s\")", path, shown(&sb, v),
			       example);
			strbuf_free(&sb);
			return;
		}
	}
	if (!utf8_valid(v)) {
		report(ld, s, "%s: not valid UTF-8 (expected text like \"%s\")", path, example);
		return;
	}
	*out = xstrdup(v);
}

static void load_actions_users(struct loader *ld, const config_setting_t *e, const char *pfx,
			       struct config_actions_tenant *t)
{
	const config_setting_t *s = config_setting_get_member(e, "users");
	if (!s) {
		report(ld, e, "%s.users: missing (expected users = [\"@alice:example.org\"]; the Matrix users who may "
		       "act on this tenant)", pfx);
		return;
	}
	char path[96];
	key_path(path, sizeof path, pfx, "users");
	char **users;
	size_t n;
	if (!get_string_list(ld, s, path, true, &users, &n))
		return;
	bool single = config_setting_type(s) == CONFIG_TYPE_STRING;
	bool ok = n > 0;
	if (n == 0)
		report(ld, s, "%s: empty list (expected at least one Matrix user id such as \"@alice:example.org\"; "
		       "remove the tenant to let nobody act on it)", path);
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
		return;
	}
	t->users = users;
	t->n_users = n;
}

static void load_actions_tenant(struct loader *ld, const config_setting_t *e, const char *pfx,
				struct config_actions *ac, struct config_actions_tenant *t)
{
	check_keys(ld, e, pfx, actions_tenant_keys);
	struct strbuf sb = STRBUF_INIT;
	const char *name = NULL;
	const config_setting_t *ns = config_setting_get_member(e, "name");
	if (!ns) {
		report(ld, e, "%s.name: missing (expected name = \"scs\"; the Zuul tenant)", pfx);
	} else if (get_string(ld, e, pfx, "name", &name) && name) {
		if (!tenant_name_ok(name)) {
			report(ld, ns, "%s.name: bad tenant name %s (expected Zuul's tenant name: letters, digits, '.', "
			       "'_' and '-')", pfx, shown(&sb, name));
		} else {
			for (size_t i = 0; ac->tenants && &ac->tenants[i] < t; i++)
				if (ac->tenants[i].name && strcmp(ac->tenants[i].name, name) == 0)
					report(ld, ns, "%s.name: tenant \"%s\" is listed twice (expected each tenant "
					       "once, with all its users)", pfx, name);
			t->name = xstrdup(name);
		}
	}
	const char *api = NULL;
	const config_setting_t *as = config_setting_get_member(e, "api");
	if (!as) {
		report(ld, e, "%s.api: missing (expected api = \"https://zuul.example.org\"; Zuul's web root, "
		       "where /api/tenant/... is)", pfx);
	} else if (get_string(ld, e, pfx, "api", &api) && api) {
		const char *why = url_problem(api);
		if (url_has_credentials(api)) {
			report(ld, as, "%s.api: the URL has a user name or password in it (\"...@\"; expected "
			       "https://host[:port][/path] only: the bridge signs its own tokens)", pfx);
		} else if (why) {
			report(ld, as, "%s.api: bad URL %s (%s)", pfx, shown(&sb, api), why);
		} else {
			size_t n = strlen(api);
			while (n > 0 && api[n - 1] == '/')
				n--;
			t->api = xstrndup(api, n);
		}
	}
	load_actions_users(ld, e, pfx, t);
	strbuf_free(&sb);
}

/* The key file must be the owner's alone: anyone who can read it can act on Zuul as
 * every listed user. Read only when the secrets are (the daemon, --check-config). */
static void read_actions_key(struct loader *ld, const config_setting_t *s, struct config_actions *ac)
{
	const char *path = ac->private_key_file;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		report(ld, s, "actions.private_key_file: cannot read %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		report(ld, s, "actions.private_key_file: %s is not a regular file (expected the PEM file of an RSA "
		       "private key)", path);
		close(fd);
		return;
	}
	if (st.st_mode & 077) {
		report(ld, s, "actions.private_key_file: %s is open to group or others (mode %04o; expected owner-only, "
		       "e.g. chmod 600 %s: whoever reads it can act on Zuul as every listed user)", path,
		       (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return;
	}
	char *buf = xmalloc(SECRET_MAX + 1);
	size_t len = 0;
	int err = 0;
	for (;;) {
		ssize_t got = read(fd, buf + len, SECRET_MAX + 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			err = errno;
		if (got <= 0 || (len += (size_t)got) > SECRET_MAX)
			break;
	}
	close(fd);
	buf[len > SECRET_MAX ? SECRET_MAX : len] = '\0';
	char why[200];
	struct zuul_token_key *key = NULL;
	if (err)
		report(ld, s, "actions.private_key_file: cannot read %s: %s", path, strerror(err));
	else if (len > SECRET_MAX)
		report(ld, s, "actions.private_key_file: %s is larger than %d bytes (expected one PEM private key)",
		       path, SECRET_MAX);
	else if (!(key = zuul_token_key_parse(buf, len, why, sizeof why)))
		report(ld, s, "actions.private_key_file: %s: %s", path, why);
	else
		ac->private_key_pem = xstrndup(buf, len);
	zuul_token_key_free(key);
	explicit_bzero(buf, SECRET_MAX + 1);
	free(buf);
}

static void load_actions(struct loader *ld, const config_setting_t *root, unsigned flags, struct config *cfg)
{
	struct config_actions *ac = &cfg->actions;
	const config_setting_t *grp = get_group(ld, root, NULL, "actions");
	if (!grp)
		return;
	const char *pfx = "actions";
	check_keys(ld, grp, pfx, actions_keys);
	/* The commands and reactions that act are the room side's. */
	if (!cfg->chatops.enabled)
		report(ld, grp, "actions: set, but chatops.enabled is false (expected the room side on: actions are "
		       "asked for by room commands and reactions)");
	get_claim(ld, grp, "issuer", "zuul-matrix-bridge", &ac->issuer);
	get_claim(ld, grp, "audience", "zuul", &ac->audience);
	const config_setting_t *ks = config_setting_get_member(grp, "private_key_file");
	if (!ks)
		report(ld, grp, "actions.private_key_file: missing (expected private_key_file = "
		       "\"/run/credentials/zuul-matrix-bridge/zuul-actions.pem\"; the RSA key that signs the tokens)");
	else if (get_path(ld, grp, pfx, "private_key_file", &ac->private_key_file) && ac->private_key_file &&
		 (flags & CONFIG_NEED_SECRETS))
		read_actions_key(ld, ks, ac);

	const config_setting_t *ts = config_setting_get_member(grp, "tenants");
	int t = ts ? config_setting_type(ts) : CONFIG_TYPE_NONE;
	if (!ts) {
		report(ld, grp, "actions.tenants: missing (expected tenants = ( { name = \"scs\"; api = "
		       "\"https://zuul.example.org\"; users = [\"@alice:example.org\"]; } );)");
		return;
	}
	if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && config_setting_length(ts) == 0)) {
		type_error(ld, ts, "actions.tenants", "a list of groups: tenants = ( { name = \"scs\"; api = "
			   "\"https://zuul.example.org\"; users = [\"@alice:example.org\"]; } )");
		return;
	}
	int n = config_setting_length(ts);
	if (n == 0) {
		report(ld, ts, "actions.tenants: empty list (expected at least one tenant; remove the actions group to "
		       "act on none)");
		return;
	}
	ac->tenants = xcalloc((size_t)n, sizeof *ac->tenants);
	ac->n_tenants = (size_t)n;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(ts, (unsigned)i);
		char tp[48];
		snprintf(tp, sizeof tp, "actions.tenants[%d]", i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			type_error(ld, e, tp, "a group { name = \"scs\"; api = \"https://zuul.example.org\"; users = "
				   "[\"@alice:example.org\"]; }");
			continue;
		}
		load_actions_tenant(ld, e, tp, ac, &ac->tenants[i]);
	}
	ac->enabled = true;
}

static void actions_clear(struct config_actions *ac)
{
	free(ac->issuer);
	free(ac->audience);
	free(ac->private_key_file);
	secret_free(ac->private_key_pem);
	for (size_t i = 0; i < ac->n_tenants; i++) {
		free(ac->tenants[i].name);
		free(ac->tenants[i].api);
		free_strings(ac->tenants[i].users, ac->tenants[i].n_users);
	}
	free(ac->tenants);
}

const struct config_actions_tenant *config_actions_tenant(const struct config_actions *ac, const char *tenant)
{
	for (size_t i = 0; ac && ac->enabled && tenant && i < ac->n_tenants; i++)
		if (ac->tenants[i].name && strcmp(ac->tenants[i].name, tenant) == 0)
			return &ac->tenants[i];
	return NULL;
}

bool config_actions_user_listed(const struct config_actions_tenant *t, const char *user_id)
{
	for (size_t i = 0; t && user_id && i < t->n_users; i++)
		if (strcmp(t->users[i], user_id) == 0)
			return true;
	return false;
}

/* ---- secrets ------------------------------------------------------------------ */

/* The contents of a secret file without trailing whitespace; NULL after reporting.
 * Caller frees with secret_free. */
static char *read_secret_file(struct loader *ld, const config_setting_t *s, const char *key, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		report(ld, s, "%s: cannot read %s: %s", key, path, strerror(errno));
		return NULL;
	}
	char *buf = xmalloc(SECRET_MAX + 1);
	size_t len = 0;
	int err = 0;
	for (;;) {
		ssize_t got = read(fd, buf + len, SECRET_MAX + 1 - len);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			break;
		}
		if (got == 0 || (len += (size_t)got) > SECRET_MAX)
			break;
	}
	close(fd);
	char *out = NULL;
	if (err) {
		report(ld, s, "%s: cannot read %s: %s", key, path, strerror(err));
	} else if (len > SECRET_MAX) {
		report(ld, s, "%s: %s is larger than %d bytes (expected only the secret)", key, path, SECRET_MAX);
	} else {
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
				   buf[len - 1] == '\t'))
			len--;
		if (len == 0)
			report(ld, s, "%s: %s is empty (expected the secret in it)", key, path);
		else if (memchr(buf, '\0', len))
			report(ld, s, "%s: %s contains a NUL byte (expected text)", key, path);
		else
			out = xstrndup(buf, len);
	}
	explicit_bzero(buf, SECRET_MAX + 1);
	free(buf);
	if (out)
		remember_secret(ld, out);
	return out;
}

/* Reads the secret systemd passed as credential name (LoadCredential=name:...) into
 * *out like a secret file (caller frees with secret_free). Returns false only when there
 * is no such credential; a credential that exists but is unusable is reported here. */
static bool read_credential(struct loader *ld, const config_setting_t *s, const char *name, char **out)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	if (!dir || !*dir)
		return false;
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "%s/%s", dir, name);
	bool found = access(strbuf_str(&path), F_OK) == 0;
	if (found) {
		char key[64];
		snprintf(key, sizeof key, "credential %s", name);
		*out = read_secret_file(ld, s, key, strbuf_str(&path));
	}
	strbuf_free(&path);
	return found;
}

/* Each secret from the first source that has it: the *_file the config names, the
 * environment, then systemd's credentials directory. */
/* With matrix.user the bridge logs in itself: the password from the first source that
 * has it, and no access token from any source (two ways to be the bot is one too many). */
static void load_matrix_password(struct loader *ld, const config_setting_t *mx, struct config_matrix *m,
				 const char *password_file)
{
	const config_setting_t *at = config_setting_get_member(mx, "user");
	const char *token_env = getenv("ZMB_MATRIX_ACCESS_TOKEN");
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	struct strbuf cred = STRBUF_INIT;
	strbuf_printf(&cred, "%s/matrix-access-token", dir ? dir : "");
	if (token_env && *token_env)
		report(ld, at, "matrix.user: ZMB_MATRIX_ACCESS_TOKEN is set too (expected either an access "
			       "token or matrix.user with a password, not both)");
	else if (dir && *dir && access(strbuf_str(&cred), F_OK) == 0)
		report(ld, at, "matrix.user: the credential matrix-access-token is set too (expected either an "
			       "access token or matrix.user with a password, not both)");
	strbuf_free(&cred);

	if (password_file) {
		m->password = read_secret_file(ld, config_setting_get_member(mx, "password_file"),
					       "matrix.password_file", password_file);
		return;
	}
	const char *env = getenv("ZMB_MATRIX_PASSWORD");
	if (env && *env) {
		m->password = xstrdup(env);
		remember_secret(ld, env);
	} else if (!read_credential(ld, mx, "matrix-password", &m->password)) {
		report(ld, at, "matrix.user: no password (set password_file, ZMB_MATRIX_PASSWORD or the "
			       "credential matrix-password)");
	}
}

static void load_secrets(struct loader *ld, const config_setting_t *root, struct config *cfg,
			 const char *token_file, const char *password_file, const char *matrix_password_file)
{
	const config_setting_t *mx = config_setting_get_member(root, "matrix");
	const config_setting_t *mq = config_setting_get_member(root, "mqtt");
	/* Keyed on the setting, not the parsed user: a bad user id is reported already. */
	if (mx && config_setting_type(mx) == CONFIG_TYPE_GROUP && config_setting_get_member(mx, "user")) {
		load_matrix_password(ld, mx, &cfg->matrix, matrix_password_file);
	} else if (token_file) {
		cfg->matrix.access_token = read_secret_file(ld, config_setting_get_member(mx, "access_token_file"),
							     "matrix.access_token_file", token_file);
	} else {
		const char *env = getenv("ZMB_MATRIX_ACCESS_TOKEN");
		if (env && *env) {
			cfg->matrix.access_token = xstrdup(env);
			remember_secret(ld, env);
		} else if (mx && config_setting_type(mx) == CONFIG_TYPE_GROUP &&
			   !read_credential(ld, mx, "matrix-access-token", &cfg->matrix.access_token)) {
			report(ld, mx, "matrix: no access token (set access_token_file, ZMB_MATRIX_ACCESS_TOKEN or the "
				       "credential matrix-access-token)");
		}
	}
	if (password_file) {
		cfg->mqtt.password = read_secret_file(ld, config_setting_get_member(mq, "password_file"),
						      "mqtt.password_file", password_file);
	} else {
		const char *env = getenv("ZMB_MQTT_PASSWORD");
		if (env && *env) {
			cfg->mqtt.password = xstrdup(env);
			remember_secret(ld, env);
		} else {
			read_credential(ld, mq, "mqtt-password", &cfg->mqtt.password);
		}
	}
}

/* ---- load / free ------------------------------------------------------------------ */

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
