/* session: the bridge's identity on the homeserver: a static access token, or a password
 * login with a kept device id, refresh tokens and a new login when all else fails. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redact.h"
#include "strbuf.h"

/* Store key of the device id, per configured user: a new matrix.user gets its own device. */
#define DEVICE_KEY_PREFIX "matrix.device_id:"
#define DEVICE_DISPLAY_NAME "zuul-matrix-bridge"

struct waiter {
	matrix_auth_ready_fn fn; /* NULL: cancelled or already told */
	void *data;
};

struct session {
	struct loop *loop;
	const struct config_matrix *cfg;
	struct config_matrix plain;   /* cfg without token or auth: login and refresh need none */
	struct store *store;
	struct matrix_client *mc;     /* for login and refresh only */
	struct matrix_auth auth;
	char *header;                 /* "Authorization: Bearer ..." in force, NULL: none; never logged */
	unsigned long generation;     /* changes with header */
	char *refresh_token;          /* never logged */
	char *device_id;
	bool busy;                    /* a login or refresh is out, or waits for its retry */
	bool refused;                 /* the last login was refused for good */
	bool static_refusal_logged;
	int attempts;                 /* transient failures in a row, for the backoff */
	uint64_t retry_timer;         /* the next login or refresh after a failure */
	uint64_t renew_timer;         /* refresh (or login) before the token expires */
	uint64_t notify_timer;        /* tells waiters of a token they asked for too late */
	struct waiter *waiters;
	size_t n_waiters;
};

/* ---- pure parts ---- */

void session_secret_free(char *secret)
{
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
}

/* cJSON_Delete does not zero what it frees; the secrets in a body must not linger. */
static char *print_and_wipe(cJSON *obj, const char *secret_key)
{
	char *text = cJSON_PrintUnformatted(obj);
	cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, secret_key);
	if (cJSON_IsString(v) && v->valuestring)
		explicit_bzero(v->valuestring, strlen(v->valuestring));
	cJSON_Delete(obj);
	if (!text) {
		log_msgf(ZLOG_ERROR, "session: out of memory printing a request body");
		abort();
	}
	return text;
}

char *session_login_body(const char *user, const char *password, const char *device_id)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "m.login.password");
	cJSON *id = cJSON_AddObjectToObject(o, "identifier");
	cJSON_AddStringToObject(id, "type", "m.id.user");
	cJSON_AddStringToObject(id, "user", user ? user : "");
	cJSON_AddStringToObject(o, "password", password ? password : "");
	if (device_id && *device_id)
		cJSON_AddStringToObject(o, "device_id", device_id);
	cJSON_AddStringToObject(o, "initial_device_display_name", DEVICE_DISPLAY_NAME);
	cJSON_AddBoolToObject(o, "refresh_token", true);
	return print_and_wipe(o, "password");
}

char *session_refresh_body(const char *refresh_token)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "refresh_token", refresh_token ? refresh_token : "");
	return print_and_wipe(o, "refresh_token");
}

static char *json_string(const cJSON *json, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(json, key);
	return cJSON_IsString(v) && v->valuestring && *v->valuestring ? xstrdup(v->valuestring) : NULL;
}

int session_grant_parse(const cJSON *json, struct session_grant *g)
{
	memset(g, 0, sizeof *g);
	if (!json)
		return -1;
	g->access_token = json_string(json, "access_token");
	if (!g->access_token)
		return -1;
	g->refresh_token = json_string(json, "refresh_token");
	g->device_id = json_string(json, "device_id");
	g->user_id = json_string(json, "user_id");
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(json, "expires_in_ms");
	if (cJSON_IsNumber(exp) && exp->valuedouble > 0 && exp->valuedouble < 1e15)
		g->expires_in_ms = (long long)exp->valuedouble;
	return 0;
}

void session_grant_clear(struct session_grant *g)
{
	session_secret_free(g->access_token);
	session_secret_free(g->refresh_token);
	free(g->device_id);
	free(g->user_id);
	memset(g, 0, sizeof *g);
}

long long session_renew_delay_ms(long long expires_in_ms)
{
	if (expires_in_ms <= 0)
		return 0;
	long long lead = expires_in_ms / 5;
	if (lead > 60000)
		lead = 60000;
	return expires_in_ms - lead;
}

enum session_renewal session_next_renewal(bool has_password, bool has_refresh_token, bool soft_logout)
{
	if (has_refresh_token && soft_logout)
		return SESSION_RENEW_REFRESH;
	return has_password ? SESSION_RENEW_LOGIN : SESSION_RENEW_NONE;
}

/* ---- waiters: clients whose requests wait for a token ---- */

static void add_waiter(struct session *s, matrix_auth_ready_fn fn, void *data)
{
	for (size_t i = 0; i < s->n_waiters; i++)
		if (s->waiters[i].fn && s->waiters[i].data == data)
			return;
	s->waiters = xrealloc(s->waiters, (s->n_waiters + 1) * sizeof *s->waiters);
	s->waiters[s->n_waiters++] = (struct waiter){fn, data};
}

/* Tells the waiters so far. A waiter's callback may free another client (which cancels
 * its entry) or make a client wait anew (appended: told next time), so entries are
 * read by index and cleared, not removed, until the end. */
static void notify(struct session *s, bool ok)
{
	size_t n = s->n_waiters;
	for (size_t i = 0; i < n; i++) {
		struct waiter w = s->waiters[i];
		s->waiters[i].fn = NULL;
		if (w.fn)
			w.fn(w.data, ok);
	}
	size_t kept = 0;
	for (size_t i = 0; i < s->n_waiters; i++)
		if (s->waiters[i].fn)
			s->waiters[kept++] = s->waiters[i];
	s->n_waiters = kept;
}

static void notify_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct session *s = data;
	s->notify_timer = 0;
	notify(s, s->header != NULL);
}

/* ---- the token in force ---- */

static void set_token(struct session *s, const char *access_token)
{
	session_secret_free(s->header);
	s->header = NULL;
	if (access_token) {
		redact_add_rotating(access_token); /* a homeserver error may quote it */
		struct strbuf sb = STRBUF_INIT;
		strbuf_printf(&sb, "Authorization: Bearer %s", access_token);
		s->header = strbuf_detach(&sb);
	}
	s->generation++;
}

static void set_refresh_token(struct session *s, const char *token)
{
	session_secret_free(s->refresh_token);
	redact_add_rotating(token);
	s->refresh_token = xstrdup(token);
}

static const char *auth_header(void *ctx, unsigned long *generation)
{
	struct session *s = ctx;
	*generation = s->generation;
	return s->header;
}

/* ---- login and refresh ---- */

static void start_login(struct session *s);
static void start_refresh(struct session *s);

static void retry_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct session *s = data;
	s->retry_timer = 0;
	s->busy = false;
	if (s->refresh_token)
		start_refresh(s);
	else
		start_login(s);
}

/* Backs off like deliveries do (retry_min doubling up to retry_max), or as long as the
 * homeserver asked (429). */
static void retry_later(struct session *s, long retry_after_ms)
{
	long long delay = s->cfg->retry_min_ms > 0 ? s->cfg->retry_min_ms : 1000;
	for (int i = 0; i < s->attempts && delay < s->cfg->retry_max_ms; i++)
		delay *= 2;
	if (s->cfg->retry_max_ms > 0 && delay > s->cfg->retry_max_ms)
		delay = s->cfg->retry_max_ms;
	if (retry_after_ms > delay)
		delay = retry_after_ms;
	s->attempts++;
	s->busy = true;
	loop_timer_cancel(s->loop, s->retry_timer);
	s->retry_timer = loop_timer_add(s->loop, (uint64_t)delay, retry_fired, s);
}

static void renew_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct session *s = data;
	s->renew_timer = 0;
	if (s->busy)
		return;
	if (s->refresh_token)
		start_refresh(s);
	else
		start_login(s);
}

static void keep_device_id(struct session *s, const char *device_id)
{
	if (!device_id || (s->device_id && strcmp(s->device_id, device_id) == 0))
		return;
	free(s->device_id);
	s->device_id = xstrdup(device_id);
	struct strbuf key = STRBUF_INIT;
	strbuf_printf(&key, DEVICE_KEY_PREFIX "%s", s->cfg->user);
	if (store_kv_set(s->store, strbuf_str(&key), device_id) != 0)
		log_kv(ZLOG_WARN, "cannot keep the device id in the store; the next start gets a new device",
		       "device_id", device_id, NULL);
	strbuf_free(&key);
}

/* A new token is in force: the waiting clients resend, and its renewal is planned. */
static void apply_grant(struct session *s, const struct session_grant *g)
{
	set_token(s, g->access_token);
	if (g->refresh_token)
		set_refresh_token(s, g->refresh_token);
	s->busy = false;
	s->refused = false;
	s->attempts = 0;
	loop_timer_cancel(s->loop, s->renew_timer);
	s->renew_timer = 0;
	/* Without a refresh token an expiring token is replaced by a new login. */
	if (g->expires_in_ms > 0)
		s->renew_timer = loop_timer_add(s->loop, (uint64_t)session_renew_delay_ms(g->expires_in_ms),
						renew_fired, s);
	notify(s, true);
}

static void log_grant(const char *msg, enum log_level level, const struct session_grant *g, const char *device)
{
	char expires[32] = "never";
	if (g->expires_in_ms > 0)
		snprintf(expires, sizeof expires, "%lldms", g->expires_in_ms);
	log_kv(level, msg, "user", g->user_id, "device_id", device, "refresh_token", g->refresh_token ? "yes" : "no",
	       "expires_in", expires, NULL);
}

/* The login was refused for good (wrong password, deactivated account): loud once, the
 * waiting requests fail, and a login is tried again after retry_max. */
static void login_refused(struct session *s, const struct matrix_response *resp)
{
	struct strbuf why = STRBUF_INIT;
	matrix_response_describe(resp, &why);
	if (!s->refused)
		log_kv(ZLOG_ERROR, "the homeserver refused the login; requests fail until it succeeds", "user",
		       s->cfg->user, "error", strbuf_str(&why), NULL);
	strbuf_free(&why);
	s->refused = true;
	set_token(s, NULL);
	s->busy = true;
	loop_timer_cancel(s->loop, s->retry_timer);
	s->retry_timer = loop_timer_add(s->loop, (uint64_t)(s->cfg->retry_max_ms > 0 ? s->cfg->retry_max_ms : 300000),
					retry_fired, s);
	notify(s, false);
}

static void on_login(const struct matrix_response *resp, void *data)
{
	struct session *s = data;
	struct session_grant g;
	if (resp->status == 200 && session_grant_parse(resp->json, &g) == 0) {
		keep_device_id(s, g.device_id);
		log_grant("logged in to the homeserver", ZLOG_INFO, &g, s->device_id);
		apply_grant(s, &g);
		session_grant_clear(&g);
		return;
	}
	if (resp->status == 200 || matrix_response_is_transient(resp)) {
		struct strbuf why = STRBUF_INIT;
		if (resp->status == 200)
			strbuf_puts(&why, "answer without an access token");
		else
			matrix_response_describe(resp, &why);
		log_kv(ZLOG_WARN, "login failed; retrying", "user", s->cfg->user, "error", strbuf_str(&why), NULL);
		strbuf_free(&why);
		retry_later(s, resp->retry_after_ms);
		return;
	}
	login_refused(s, resp);
}

static void start_login(struct session *s)
{
	s->busy = true;
	char *body = session_login_body(s->cfg->user, s->cfg->password, s->device_id);
	int rc = matrix_request(s->mc, "POST", "/_matrix/client/v3/login", body, on_login, s);
	session_secret_free(body);
	if (rc != 0)
		retry_later(s, -1);
}

static void on_refresh(const struct matrix_response *resp, void *data)
{
	struct session *s = data;
	struct session_grant g;
	if (resp->status == 200 && session_grant_parse(resp->json, &g) == 0) {
		log_grant("access token refreshed", ZLOG_DEBUG, &g, s->device_id);
		apply_grant(s, &g);
		session_grant_clear(&g);
		return;
	}
	/* The old refresh token stays valid until the new access token is used (Synapse),
	 * so a refresh lost in transit can be asked again. */
	if (resp->status != 200 && matrix_response_is_transient(resp)) {
		retry_later(s, resp->retry_after_ms);
		return;
	}
	/* Refused (expired, used, session over) or a useless answer: only a login helps. */
	struct strbuf why = STRBUF_INIT;
	matrix_response_describe(resp, &why);
	log_kv(ZLOG_INFO, "refresh refused; logging in again", "error", strbuf_str(&why), NULL);
	strbuf_free(&why);
	session_secret_free(s->refresh_token);
	s->refresh_token = NULL;
	start_login(s);
}

static void start_refresh(struct session *s)
{
	s->busy = true;
	char *body = session_refresh_body(s->refresh_token);
	int rc = matrix_request(s->mc, "POST", "/_matrix/client/v3/refresh", body, on_refresh, s);
	session_secret_free(body);
	if (rc != 0)
		retry_later(s, -1);
}

/* ---- matrix_auth ---- */

static bool auth_renew(void *ctx, unsigned long generation, bool soft_logout, matrix_auth_ready_fn ready,
		       void *data)
{
	struct session *s = ctx;
	if (!s->cfg->user) {
		if (!s->static_refusal_logged)
			log_kv(ZLOG_ERROR, "the homeserver refused the access token; every request fails until a new "
					   "token and a restart (or log in with matrix.user and a password)",
			       NULL);
		s->static_refusal_logged = true;
		return false;
	}
	if (s->refused)
		return false;
	add_waiter(s, ready, data);
	if (s->header && generation != s->generation) {
		/* Renewed meanwhile: say so from the loop, never from inside renew. */
		if (!s->notify_timer)
			s->notify_timer = loop_timer_add(s->loop, 0, notify_fired, s);
		return true;
	}
	if (s->busy)
		return true;
	enum session_renewal next = session_next_renewal(true, s->refresh_token != NULL, soft_logout);
	if (next == SESSION_RENEW_REFRESH) {
		start_refresh(s);
	} else {
		if (generation)
			log_kv(ZLOG_INFO, "access token refused; logging in again", "soft_logout",
			       soft_logout ? "true" : "false", NULL);
		session_secret_free(s->refresh_token);
		s->refresh_token = NULL;
		start_login(s);
	}
	return true;
}

static void auth_cancel(void *ctx, void *data)
{
	struct session *s = ctx;
	for (size_t i = 0; i < s->n_waiters; i++)
		if (s->waiters[i].data == data)
			s->waiters[i].fn = NULL;
}

/* ---- life cycle ---- */

struct session *session_new(struct loop *loop, const struct config_matrix *cfg, struct store *store)
{
	if (!loop || !cfg || !store)
		return NULL;
	struct session *s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->cfg = cfg;
	s->store = store;
	s->auth = (struct matrix_auth){.header = auth_header, .renew = auth_renew, .cancel = auth_cancel, .ctx = s};
	if (!cfg->user) {
		set_token(s, cfg->access_token);
		return s;
	}
	s->plain = *cfg;
	s->plain.access_token = NULL;
	s->plain.auth = NULL;
	s->mc = matrix_client_new(loop, &s->plain);
	if (!s->mc) {
		free(s);
		return NULL;
	}
	struct strbuf key = STRBUF_INIT;
	strbuf_printf(&key, DEVICE_KEY_PREFIX "%s", cfg->user);
	s->device_id = store_kv_get(store, strbuf_str(&key));
	strbuf_free(&key);
	return s;
}

void session_start(struct session *s)
{
	if (!s || !s->cfg->user || s->busy || s->header)
		return;
	log_kv(ZLOG_INFO, "logging in to the homeserver", "user", s->cfg->user, "device_id",
	       s->device_id ? s->device_id : "(new)", NULL);
	start_login(s);
}

const struct matrix_auth *session_auth(struct session *s)
{
	return s ? &s->auth : NULL;
}

void session_free(struct session *s)
{
	if (!s)
		return;
	loop_timer_cancel(s->loop, s->retry_timer);
	loop_timer_cancel(s->loop, s->renew_timer);
	loop_timer_cancel(s->loop, s->notify_timer);
	matrix_client_free(s->mc);
	session_secret_free(s->header);
	session_secret_free(s->refresh_token);
	free(s->device_id);
	free(s->waiters);
	free(s);
}
