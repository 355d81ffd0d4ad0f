/* config connections: the groups that say where the bridge connects and listens, mqtt
 * (with tls), matrix and metrics; their secrets are read by config_secrets.c. */
#include "config.h"
#include "config_internal.h"

#include "duration.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/* The keys of mqtt, mqtt.tls, matrix and metrics, in the order messages list them. */
static const char *const mqtt_keys[] = {
	"host", "port", "client_id", "username", "password_file", "qos", "clean_session", "keepalive",
	"protocol", "receive_maximum", "maximum_packet_size", "share_group", "topics", "reconnect_min",
	"reconnect_max", "tls", NULL,
};
static const char *const tls_keys[] = {
	"ca_file", "ca_dir", "cert_file", "key_file", "verify", NULL,
};
static const char *const matrix_keys[] = {
	"homeserver", "access_token_file", "user", "password_file", "insecure_skip_tls_verify",
	"request_timeout", "retry_min", "retry_max", "post_unencrypted", NULL,
};
static const char *const metrics_keys[] = {
	"listen", "port", NULL,
};

/* NULL when filter is a valid MQTT topic filter, else why not. */
static const char *topic_filter_problem(const char *filter)
{
	if (!*filter)
		return "empty topic filter";
	if (strlen(filter) > 65535)
		return "longer than 65535 bytes";
	for (const char *p = filter; *p; p++) {
		bool level_start = p == filter || p[-1] == '/';
		bool level_end = p[1] == '\0' || p[1] == '/';
		if (*p == '#') {
			if (!level_start || !level_end)
				return "'#' must be a whole level";
			if (p[1] != '\0')
				return "'#' must be the last level";
		} else if (*p == '+') {
			if (!level_start || !level_end)
				return "'+' must be a whole level";
		}
	}
	return NULL;
}

static void load_tls(struct loader *ld, const config_setting_t *tls, struct config_mqtt *m)
{
	const char *pfx = "mqtt.tls";
	check_keys(ld, tls, pfx, tls_keys);
	m->tls.enabled = true;
	get_path(ld, tls, pfx, "ca_file", &m->tls.ca_file);
	get_path(ld, tls, pfx, "ca_dir", &m->tls.ca_dir);
	get_path(ld, tls, pfx, "cert_file", &m->tls.cert_file);
	get_path(ld, tls, pfx, "key_file", &m->tls.key_file);
	get_bool(ld, tls, pfx, "verify", &m->tls.verify);
	bool has_cert = config_setting_get_member(tls, "cert_file") != NULL;
	bool has_key = config_setting_get_member(tls, "key_file") != NULL;
	if (has_cert != has_key)
		report(ld, tls, "mqtt.tls: %s without %s (expected cert_file and key_file together, or neither)",
		       has_cert ? "cert_file" : "key_file", has_cert ? "key_file" : "cert_file");
}

void load_mqtt(struct loader *ld, const config_setting_t *grp, struct config_mqtt *m)
{
	const char *pfx = "mqtt";
	const char *v;
	const config_setting_t *tls = NULL;

	m->qos = 1;
	m->keepalive = 60;
	m->protocol = 4;
	m->reconnect_min_s = 1;
	m->reconnect_max_s = 60;
	m->tls.verify = true;
	if (grp) {
		check_keys(ld, grp, pfx, mqtt_keys);
		tls = get_group(ld, grp, pfx, "tls");
		if (tls)
			load_tls(ld, tls, m);
	}
	m->port = tls ? 8883 : 1883;

	v = "localhost";
	get_nonempty(ld, grp, pfx, "host", "a host name or address", &v);
	if (strchr(v, '@') || strstr(v, "://")) {
		/* Not quoted: mqtt://user:pw@host would put the password in the log. */
		report(ld, config_setting_get_member(grp, "host"),
		       "mqtt.host: a URL or user@host (expected a host name or address only: the user "
		       "belongs in mqtt.username, the password in mqtt.password_file)");
		v = "localhost";
	}
	m->host = xstrdup(v);
	get_int(ld, grp, pfx, "port", 1, 65535, &m->port);
	v = "zuul-matrix-bridge";
	get_nonempty(ld, grp, pfx, "client_id", "an MQTT client id", &v);
	m->client_id = xstrdup(v);
	v = NULL;
	get_nonempty(ld, grp, pfx, "username", "a user name, or remove the key", &v);
	m->username = xstrdup(v);
	get_int(ld, grp, pfx, "qos", 0, 2, &m->qos);
	get_bool(ld, grp, pfx, "clean_session", &m->clean_session);

	long long secs = m->keepalive;
	if (get_duration(ld, grp, pfx, "keepalive", 5, 3600, &secs))
		m->keepalive = (int)secs;

	const config_setting_t *s = grp ? config_setting_get_member(grp, "protocol") : NULL;
	if (s) {
		const char *p = config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
		if (p && strcmp(p, "3.1.1") == 0)
			m->protocol = 4;
		else if ((p && strcmp(p, "5") == 0) || (is_int(s) && config_setting_get_int64(s) == 5))
			m->protocol = 5;
		else if (p)
			report(ld, s, "mqtt.protocol: unsupported protocol \"%s\" (expected \"3.1.1\" or \"5\")", p);
		else
			type_error(ld, s, "mqtt.protocol", "\"3.1.1\" or \"5\"");
	}

	/* A larger window lets more reports share one commit; 3.1.1 has no such field, there
	 * the broker's own limit applies (mosquitto: max_inflight_messages, default 20). */
	if (m->protocol == 5)
		m->receive_maximum = MQTT_DEFAULT_RECEIVE_MAXIMUM;
	s = grp ? config_setting_get_member(grp, "receive_maximum") : NULL;
	if (s && get_int(ld, grp, pfx, "receive_maximum", 1, 65535, &m->receive_maximum) && m->protocol != 5) {
		report(ld, s, "mqtt.receive_maximum: needs protocol = \"5\" (with MQTT 3.1.1 the broker's own "
			      "limit applies, in mosquitto max_inflight_messages)");
		m->receive_maximum = 0;
	}

	/* The broker must not send us a larger packet (MQTT 5 3.1.2.11.4), so one oversized
	 * publish cannot make libmosquitto buffer it whole. 3.1.1 has no such field: there only
	 * the broker's own message_size_limit protects us. */
	if (m->protocol == 5)
		m->maximum_packet_size = MQTT_DEFAULT_MAXIMUM_PACKET_SIZE;
	s = grp ? config_setting_get_member(grp, "maximum_packet_size") : NULL;
	if (s && get_size(ld, grp, pfx, "maximum_packet_size", MQTT_MIN_PACKET_SIZE, MQTT_MAX_PACKET_SIZE,
			  &m->maximum_packet_size) &&
	    m->protocol != 5) {
		report(ld, s, "mqtt.maximum_packet_size: needs protocol = \"5\" (with MQTT 3.1.1 set the "
			      "broker's message_size_limit instead)");
		m->maximum_packet_size = 0;
	}

	v = NULL;
	if (get_nonempty(ld, grp, pfx, "share_group", "a group name, or remove the key", &v) && v) {
		/* MQTT 5 4.8.2: a ShareName must not contain '/', '+' or '#'. */
		if (strpbrk(v, "/+#"))
			report(ld, config_setting_get_member(grp, "share_group"),
			       "mqtt.share_group: bad group name \"%s\" (expected no '/', '+' or '#')", v);
		else
			m->share_group = xstrdup(v);
	}

	s = grp ? config_setting_get_member(grp, "topics") : NULL;
	if (s) {
		char **topics;
		size_t n;
		if (get_string_list(ld, s, "mqtt.topics", true, &topics, &n)) {
			bool ok = true;
			if (n == 0) {
				report(ld, s, "mqtt.topics: empty list (expected at least one topic filter, e.g. \"zuul/#\")");
				ok = false;
			}
			for (size_t i = 0; i < n; i++) {
				const char *why = topic_filter_problem(topics[i]);
				if (why) {
					const config_setting_t *e = config_setting_type(s) == CONFIG_TYPE_STRING
									    ? s : config_setting_get_elem(s, (unsigned)i);
					report(ld, e, "mqtt.topics[%zu]: bad topic filter \"%s\" (%s)", i, topics[i], why);
					ok = false;
				}
			}
			if (ok) {
				m->topics = topics;
				m->n_topics = n;
			} else {
				free_strings(topics, n);
			}
		}
	}
	if (!m->topics) {
		m->topics = xmalloc(sizeof(char *));
		m->topics[0] = xstrdup("zuul/#");
		m->n_topics = 1;
	}

	long long rmin = m->reconnect_min_s, rmax = m->reconnect_max_s;
	bool ok_min = get_duration(ld, grp, pfx, "reconnect_min", 1, 86400, &rmin);
	bool ok_max = get_duration(ld, grp, pfx, "reconnect_max", 1, 86400, &rmax);
	if (ok_min && ok_max && rmax < rmin) {
		char a[32], b[32];
		report(ld, config_setting_get_member(grp, "reconnect_max") ? config_setting_get_member(grp, "reconnect_max") : grp,
		       "mqtt.reconnect_max: %s is less than reconnect_min %s (expected reconnect_max >= reconnect_min)",
		       duration_format((double)rmax, a, sizeof(a)), duration_format((double)rmin, b, sizeof(b)));
	}
	m->reconnect_min_s = (int)rmin;
	m->reconnect_max_s = (int)rmax;
}

/* http(s)://host[...]; NULL when fine, else why not. */
const char *url_problem(const char *url)
{
	const char *rest;
	if (strncmp(url, "https://", 8) == 0)
		rest = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		rest = url + 7;
	else
		return "expected http:// or https:// followed by a host";
	if (!*rest || *rest == '/')
		return "no host after the scheme";
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "contains whitespace or control characters";
	if (strpbrk(url, "?#"))
		return "expected no query or fragment";
	return NULL;
}

/* True when the authority of an http(s) URL (between "//" and the next "/") has a
 * user or password in it ("user:pw@host"): a secret in the config file, which the
 * bridge would also log with the URL. */
bool url_has_credentials(const char *url)
{
	const char *authority = strstr(url, "//");
	if (!authority)
		return false;
	authority += 2;
	size_t n = strcspn(authority, "/?#");
	return memchr(authority, '@', n) != NULL;
}

/* matrix.user: what m.id.user accepts, a full user id or the localpart alone (the
 * homeserver adds its own name). */
static bool matrix_user_ok(const char *user)
{
	if (user[0] == '@')
		return rotation_user_id_valid(user);
	if (strchr(user, ':'))
		return false;
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "@%s:localhost", user);
	bool ok = rotation_user_id_valid(strbuf_str(&sb));
	strbuf_free(&sb);
	return ok;
}

void load_matrix(struct loader *ld, const config_setting_t *grp, struct config_matrix *mx)
{
	const char *pfx = "matrix";
	mx->tls_verify = true;
	mx->request_timeout_s = 30;
	mx->retry_min_ms = 1000;
	mx->retry_max_ms = 300000;
	check_keys(ld, grp, pfx, matrix_keys);

	const config_setting_t *hs = config_setting_get_member(grp, "homeserver");
	const char *url = NULL;
	if (!hs) {
		report(ld, grp, "matrix.homeserver: missing (expected the homeserver URL, e.g. "
				"homeserver = \"https://matrix.example.org\";)");
	} else if (get_string(ld, grp, pfx, "homeserver", &url)) {
		const char *why = url_problem(url);
		if (url_has_credentials(url)) {
			/* Not quoted: the URL holds a password. */
			report(ld, hs, "matrix.homeserver: the URL has a user name or password in it (\"...@\"; "
				       "expected https://host[:port] only: secrets belong in matrix.access_token_file, "
				       "or matrix.user with matrix.password_file)");
		} else if (why) {
			report(ld, hs, "matrix.homeserver: bad URL \"%s\" (%s)", url, why);
		} else {
			size_t n = strlen(url);
			while (n > 0 && url[n - 1] == '/')
				n--;
			mx->homeserver = xstrndup(url, n);
		}
	}

	const char *user = NULL;
	if (get_nonempty(ld, grp, pfx, "user", "a user id or localpart", &user) && user) {
		if (matrix_user_ok(user))
			mx->user = xstrdup(user);
		else
			report(ld, config_setting_get_member(grp, "user"),
			       "matrix.user: \"%s\" is not a Matrix user id or localpart (expected "
			       "@localpart:server or localpart, localpart of a-z 0-9 ._=-/+)", user);
	}

	bool insecure = false;
	if (get_bool(ld, grp, pfx, "insecure_skip_tls_verify", &insecure))
		mx->tls_verify = !insecure;

	long long v = mx->request_timeout_s;
	if (get_duration(ld, grp, pfx, "request_timeout", 1, 3600, &v))
		mx->request_timeout_s = (int)v;
	long long rmin = 1, rmax = 300;
	bool ok_min = get_duration(ld, grp, pfx, "retry_min", 1, 86400, &rmin);
	bool ok_max = get_duration(ld, grp, pfx, "retry_max", 1, 86400, &rmax);
	if (ok_min && ok_max && rmax < rmin) {
		const config_setting_t *at = config_setting_get_member(grp, "retry_max");
		char a[32], b[32];
		report(ld, at ? at : grp,
		       "matrix.retry_max: %s is less than retry_min %s (expected retry_max >= retry_min)",
		       duration_format((double)rmax, a, sizeof(a)), duration_format((double)rmin, b, sizeof(b)));
	}
	mx->retry_min_ms = (int)(rmin * 1000);
	mx->retry_max_ms = (int)(rmax * 1000);

	const config_setting_t *pu = config_setting_get_member(grp, "post_unencrypted");
	if (pu)
		get_string_list(ld, pu, "matrix.post_unencrypted", true, &mx->post_unencrypted, &mx->n_post_unencrypted);
}

bool config_may_post_unencrypted(const struct config_matrix *mx, const char *room)
{
	for (size_t i = 0; room && i < mx->n_post_unencrypted; i++)
		if (strcmp(mx->post_unencrypted[i], room) == 0)
			return true;
	return false;
}

/* A room in matrix.post_unencrypted that no route posts into is a typo waiting to let an
 * encrypted room's reports go to the dead letters after all. */
void check_post_unencrypted(struct loader *ld, const config_setting_t *mx, const struct config *cfg)
{
	const config_setting_t *pu = mx ? config_setting_get_member(mx, "post_unencrypted") : NULL;
	for (size_t i = 0; pu && i < cfg->matrix.n_post_unencrypted; i++) {
		const char *room = cfg->matrix.post_unencrypted[i];
		bool known = false;
		for (size_t r = 0; r < cfg->n_routes && !known; r++)
			known = cfg->routes[r].room && strcmp(cfg->routes[r].room, room) == 0;
		const config_setting_t *at = config_setting_type(pu) == CONFIG_TYPE_STRING
						     ? pu
						     : config_setting_get_elem(pu, (unsigned)i);
		if (!known)
			report(ld, at ? at : pu,
			       "matrix.post_unencrypted[%zu]: \"%s\" is no route's room (expected a room exactly as "
			       "a route's `room` names it)",
			       i, room);
	}
}

/* The group's presence turns the listener on; port has no default, so that turning it
 * on is a decision about which port, and listen stays on loopback unless told. */
void load_metrics(struct loader *ld, const config_setting_t *grp, struct config_metrics *mt)
{
	const char *pfx = "metrics";
	check_keys(ld, grp, pfx, metrics_keys);
	mt->enabled = true;
	const char *addr = "127.0.0.1";
	if (get_nonempty(ld, grp, pfx, "listen", "a numeric IP address", &addr)) {
		unsigned char buf[sizeof(struct in6_addr)];
		if (inet_pton(AF_INET, addr, buf) == 1 || inet_pton(AF_INET6, addr, buf) == 1)
			mt->listen = xstrdup(addr);
		else
			report(ld, config_setting_get_member(grp, "listen"),
			       "metrics.listen: bad address \"%s\" (expected a numeric IPv4 or IPv6 address, "
			       "e.g. \"127.0.0.1\" or \"::1\"; host names are not resolved)", addr);
	}
	if (!config_setting_get_member(grp, "port"))
		report(ld, grp, "metrics.port: missing (expected the port for /metrics and /healthz, "
				"1..65535, e.g. port = 9464;)");
	else
		get_int(ld, grp, pfx, "port", 1, 65535, &mt->port);
}
