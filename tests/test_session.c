/* test_session: the session's pure parts (login and refresh bodies, reading a grant, when to
 * renew and how) and a static-token session, which never renews and says so once.
 * The password login against a real homeserver is tests/test_synapse_login.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "session.h"
#include "store.h"
#include "strbuf.h"
#include "test.h"

static void test_login_body_asks_for_a_refresh_token_on_the_kept_device(void)
{
	char *body = session_login_body("zuul-bot", "pa\"ss", "DEVICEID");
	cJSON *j = cJSON_Parse(body);
	CHECK(j != NULL);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "identifier");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "type")), "m.login.password");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(id, "type")), "m.id.user");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(id, "user")), "zuul-bot");
	/* JSON-escaped, not cut at the quote. */
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "password")), "pa\"ss");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "device_id")), "DEVICEID");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "initial_device_display_name")),
		  "zuul-matrix-bridge");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "refresh_token")));
	cJSON_Delete(j);
	session_secret_free(body);

	/* The first login lets the homeserver choose the device. */
	body = session_login_body("@zuul-bot:example.org", "pw", NULL);
	j = cJSON_Parse(body);
	CHECK(cJSON_GetObjectItemCaseSensitive(j, "device_id") == NULL);
	cJSON_Delete(j);
	session_secret_free(body);

	body = session_refresh_body("syr_abc");
	CHECK_STR(body, "{\"refresh_token\":\"syr_abc\"}");
	session_secret_free(body);
}

static void test_grant_is_read_from_login_and_refresh_answers(void)
{
	struct session_grant g;
	cJSON *login = cJSON_Parse("{\"user_id\":\"@zuul-bot:localhost\",\"access_token\":\"syt_a\","
				   "\"device_id\":\"DEV\",\"refresh_token\":\"syr_b\",\"expires_in_ms\":299980,"
				   "\"home_server\":\"localhost\"}");
	CHECK_INT(session_grant_parse(login, &g), 0);
	CHECK_STR(g.access_token, "syt_a");
	CHECK_STR(g.refresh_token, "syr_b");
	CHECK_STR(g.device_id, "DEV");
	CHECK_STR(g.user_id, "@zuul-bot:localhost");
	CHECK_INT(g.expires_in_ms, 299980);
	session_grant_clear(&g);
	cJSON_Delete(login);

	/* A homeserver without refresh tokens: nothing expires. */
	cJSON *plain = cJSON_Parse("{\"user_id\":\"@b:x\",\"access_token\":\"t\",\"device_id\":\"D\"}");
	CHECK_INT(session_grant_parse(plain, &g), 0);
	CHECK(g.refresh_token == NULL);
	CHECK_INT(g.expires_in_ms, 0);
	session_grant_clear(&g);
	cJSON_Delete(plain);

	/* No access token (or an empty one) is no grant. */
	cJSON *bad = cJSON_Parse("{\"access_token\":\"\",\"refresh_token\":\"r\"}");
	CHECK_INT(session_grant_parse(bad, &g), -1);
	CHECK(g.refresh_token == NULL);
	CHECK_INT(session_grant_parse(NULL, &g), -1);
	cJSON_Delete(bad);
}

static void test_renewal_comes_before_expiry(void)
{
	CHECK_INT(session_renew_delay_ms(0), 0);
	CHECK_INT(session_renew_delay_ms(5000), 4000);          /* a fifth before */
	CHECK_INT(session_renew_delay_ms(300000), 240000);      /* Synapse's default 5m */
	CHECK_INT(session_renew_delay_ms(3600000), 3540000);    /* at most a minute before */
}

static void test_soft_logout_refreshes_anything_else_logs_in(void)
{
	CHECK_INT(session_next_renewal(true, true, true), SESSION_RENEW_REFRESH);
	/* Logged out or device deleted: the refresh token went with it. */
	CHECK_INT(session_next_renewal(true, true, false), SESSION_RENEW_LOGIN);
	CHECK_INT(session_next_renewal(true, false, true), SESSION_RENEW_LOGIN);
	/* A static token cannot be renewed at all. */
	CHECK_INT(session_next_renewal(false, false, true), SESSION_RENEW_NONE);
	CHECK_INT(session_next_renewal(false, false, false), SESSION_RENEW_NONE);
}

static int ready_calls;
static void on_ready(void *data, bool ok)
{
	(void)data;
	(void)ok;
	ready_calls++;
}

static void test_static_token_is_the_header_and_its_refusal_is_logged_once(void)
{
	char dir[] = "/tmp/zmb-test-session-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char err[256];
	struct store *st = store_open(dir, err, sizeof err);
	CHECK(st != NULL);
	struct loop *loop = loop_new();
	struct config_matrix cfg = {.homeserver = "http://127.0.0.1:9", .access_token = "static-token",
				    .request_timeout_s = 5, .retry_min_ms = 1000, .retry_max_ms = 4000};
	struct session *s = session_new(loop, &cfg, st);
	const struct matrix_auth *auth = session_auth(s);
	unsigned long gen = 0;
	CHECK_STR(auth->header(auth->ctx, &gen), "Authorization: Bearer static-token");
	CHECK(gen != 0);
	session_start(s); /* nothing to log in */

	FILE *logf = tmpfile();
	log_set_stream(logf);
	CHECK(!auth->renew(auth->ctx, gen, true, on_ready, NULL));
	CHECK(!auth->renew(auth->ctx, gen, false, on_ready, NULL));
	log_set_stream(stderr);
	rewind(logf);
	char line[1024];
	int refusals = 0;
	while (fgets(line, sizeof line, logf)) {
		CHECK(strstr(line, "static-token") == NULL);
		refusals += strstr(line, "refused the access token") != NULL;
	}
	fclose(logf);
	CHECK_INT(refusals, 1);
	CHECK_INT(ready_calls, 0);

	session_free(s);
	loop_free(loop);
	store_close(st);
	struct strbuf rm = STRBUF_INIT;
	strbuf_printf(&rm, "rm -rf '%s'", dir);
	CHECK(system(strbuf_str(&rm)) == 0);
	strbuf_free(&rm);
}

static void test_password_session_has_no_token_before_login_and_reads_its_device(void)
{
	char dir[] = "/tmp/zmb-test-session-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char err[256];
	struct store *st = store_open(dir, err, sizeof err);
	CHECK(st != NULL);
	CHECK_INT(store_kv_set(st, "matrix.device_id:zuul-bot", "KEPTDEVICE"), 0);
	CHECK_INT(store_commit(st), 0);
	struct loop *loop = loop_new();
	struct config_matrix cfg = {.homeserver = "http://127.0.0.1:9", .user = "zuul-bot", .password = "s3cret-pw",
				    .request_timeout_s = 5, .retry_min_ms = 1000, .retry_max_ms = 4000};
	FILE *logf = tmpfile();
	log_set_stream(logf);
	struct session *s = session_new(loop, &cfg, st);
	const struct matrix_auth *auth = session_auth(s);
	unsigned long gen = 7;
	CHECK(auth->header(auth->ctx, &gen) == NULL);
	session_start(s); /* the login goes out (to nowhere); the device is the kept one */
	log_set_stream(stderr);
	rewind(logf);
	char line[1024];
	bool logged = false;
	while (fgets(line, sizeof line, logf)) {
		CHECK(strstr(line, "s3cret-pw") == NULL);
		logged |= strstr(line, "logging in to the homeserver") && strstr(line, "device_id=KEPTDEVICE");
	}
	fclose(logf);
	CHECK(logged);
	/* A client waiting now is one waiter, told once the login ends. */
	CHECK(auth->renew(auth->ctx, 0, false, on_ready, &ready_calls));
	CHECK(auth->renew(auth->ctx, 0, false, on_ready, &ready_calls));
	auth->cancel(auth->ctx, &ready_calls);
	session_free(s);
	loop_free(loop);
	store_close(st);
	struct strbuf rm = STRBUF_INIT;
	strbuf_printf(&rm, "rm -rf '%s'", dir);
	CHECK(system(strbuf_str(&rm)) == 0);
	strbuf_free(&rm);
}

int main(void)
{
	RUN(test_login_body_asks_for_a_refresh_token_on_the_kept_device);
	RUN(test_grant_is_read_from_login_and_refresh_answers);
	RUN(test_renewal_comes_before_expiry);
	RUN(test_soft_logout_refreshes_anything_else_logs_in);
	RUN(test_static_token_is_the_header_and_its_refusal_is_logged_once);
	RUN(test_password_session_has_no_token_before_login_and_reads_its_device);
	return test_done();
}
