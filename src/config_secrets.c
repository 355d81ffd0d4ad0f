/* config secrets: each secret from the first source that has it: the *_file the config
 * names, the environment, then systemd's credentials directory. */
#include "config.h"
#include "config_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

void load_secrets(struct loader *ld, const config_setting_t *root, struct config *cfg,
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
