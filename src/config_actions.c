/* config actions: the actions group (issue #17), the claims and key of the tokens the bridge
 * signs and, per Zuul tenant, its API and the users who may act on it. */
#include "config.h"
#include "config_internal.h"

#include "zuul_token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The keys of the actions group and of each tenant, in the order messages list them. */
static const char *const actions_keys[] = {
	"issuer", "audience", "private_key_file", "tenants", NULL,
};
static const char *const actions_tenant_keys[] = {
	"name", "api", "users", NULL,
};

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

void load_actions(struct loader *ld, const config_setting_t *root, unsigned flags, struct config *cfg)
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

void actions_clear(struct config_actions *ac)
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
