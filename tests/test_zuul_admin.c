/* Tests of zuul_admin: the requests as Zuul 14.3.0's handlers read them (paths, bodies,
 * encodings), the reasons read from its answers, and the client on our loop against
 * tests/fake_zuul_admin.py, which checks every token by Zuul's own rules. */
#include "zuul_admin.h"

#include "loop.h"
#include "strbuf.h"
#include "test.h"
#include "zuul_token.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void check_request(int rc, const struct zuul_admin_request *r, const char *method, const char *path,
			  const char *body)
{
	CHECK_INT(rc, 0);
	CHECK_STR(r->method, method);
	CHECK_STR(r->path, path);
	CHECK_STR(r->body, body);
}

static const struct zuul_admin_item change_item = {"scs", "SovereignCloudStack/standards", "check", "812", "3", NULL};
static const struct zuul_admin_item ref_item = {"scs", "SovereignCloudStack/standards", "periodic-daily", NULL, NULL,
						"refs/heads/main"};

static void test_enqueue_sends_the_change_or_the_ref_with_null_revisions(void)
{
	struct zuul_admin_request r;
	const char *why = NULL;
	int rc = zuul_admin_enqueue(&change_item, &r, &why);
	check_request(rc, &r, "POST", "/api/tenant/scs/project/SovereignCloudStack/standards/enqueue",
		      "{\"pipeline\":\"check\",\"change\":\"812,3\"}");
	zuul_admin_request_clear(&r);
	rc = zuul_admin_enqueue(&ref_item, &r, &why);
	check_request(rc, &r, "POST", "/api/tenant/scs/project/SovereignCloudStack/standards/enqueue",
		      "{\"pipeline\":\"periodic-daily\",\"ref\":\"refs/heads/main\",\"oldrev\":null,\"newrev\":null}");
	zuul_admin_request_clear(&r);
}

static void test_dequeue_sends_exactly_one_of_change_and_ref(void)
{
	struct zuul_admin_request r;
	const char *why = NULL;
	int rc = zuul_admin_dequeue(&change_item, &r, &why);
	check_request(rc, &r, "POST", "/api/tenant/scs/project/SovereignCloudStack/standards/dequeue",
		      "{\"pipeline\":\"check\",\"change\":\"812,3\"}");
	zuul_admin_request_clear(&r);
	rc = zuul_admin_dequeue(&ref_item, &r, &why);
	check_request(rc, &r, "POST", "/api/tenant/scs/project/SovereignCloudStack/standards/dequeue",
		      "{\"pipeline\":\"periodic-daily\",\"ref\":\"refs/heads/main\"}");
	zuul_admin_request_clear(&r);
}

static void test_autohold_matches_the_ref_literally_and_caps_the_count(void)
{
	struct zuul_admin_request r;
	const char *why = NULL;
	int rc = zuul_admin_autohold(&change_item, "tox-py311", 2, "flaky DNS?", &r, &why);
	check_request(rc, &r, "POST", "/api/tenant/scs/project/SovereignCloudStack/standards/autohold",
		      "{\"job\":\"tox-py311\",\"count\":2,\"change\":\"812\",\"ref\":null,\"reason\":\"flaky DNS?\","
		      "\"node_hold_expiration\":null}");
	zuul_admin_request_clear(&r);
	struct zuul_admin_item stable = ref_item;
	stable.ref = "refs/heads/stable/2024.1+x";
	rc = zuul_admin_autohold(&stable, "lint", 99, "why", &r, &why);
	check_request(rc, &r, "POST", "/api/tenant/scs/project/SovereignCloudStack/standards/autohold",
		      "{\"job\":\"lint\",\"count\":10,\"change\":null,\"ref\":\"refs/heads/stable/2024\\\\.1\\\\+x\","
		      "\"reason\":\"why\",\"node_hold_expiration\":null}");
	zuul_admin_request_clear(&r);
	rc = zuul_admin_autohold(&ref_item, "lint", 0, "why", &r, &why);
	CHECK_CONTAINS(r.body, "\"count\":1,");
	zuul_admin_request_clear(&r);
	/* the reason is cut at 1024 bytes, never inside a character */
	char reason[1100];
	memset(reason, 'a', 1023);
	strcpy(reason + 1023, "\xc3\xa9\xc3\xa9");
	rc = zuul_admin_autohold(&ref_item, "lint", 1, reason, &r, &why);
	cJSON *b = cJSON_Parse(r.body);
	const char *sent = cJSON_GetStringValue(cJSON_GetObjectItem(b, "reason"));
	CHECK_INT(sent ? strlen(sent) : 0, 1023);
	cJSON_Delete(b);
	zuul_admin_request_clear(&r);
}

static void test_names_are_percent_encoded_but_the_projects_slash(void)
{
	struct zuul_admin_item odd = {"my tenant", "org/my repo+x?#%", "check", "1", "2", NULL};
	struct zuul_admin_request r;
	const char *why = NULL;
	int rc = zuul_admin_enqueue(&odd, &r, &why);
	CHECK_INT(rc, 0);
	CHECK_STR(r.path, "/api/tenant/my%20tenant/project/org/my%20repo%2Bx%3F%23%25/enqueue");
	zuul_admin_request_clear(&r);
	rc = zuul_admin_autohold_list("scs", &r, &why);
	check_request(rc, &r, "GET", "/api/tenant/scs/autohold", NULL);
	zuul_admin_request_clear(&r);
	rc = zuul_admin_autohold_delete("scs", "00/01", &r, &why);
	check_request(rc, &r, "DELETE", "/api/tenant/scs/autohold/00%2F01", NULL);
	zuul_admin_request_clear(&r);
}

static void test_regex_escape_is_pythons(void)
{
	/* Python 3.11: re.escape("refs/tags/v1.0-rc.1+b (x)[y]{z}?*|^$\\&~# a") */
	char *e = zuul_admin_regex_escape("refs/tags/v1.0-rc.1+b (x)[y]{z}?*|^$\\&~# a");
	CHECK_STR(e, "refs/tags/v1\\.0\\-rc\\.1\\+b\\ \\(x\\)\\[y\\]\\{z\\}\\?\\*\\|\\^\\$\\\\\\&\\~\\#\\ a");
	free(e);
	e = zuul_admin_regex_escape("");
	CHECK_STR(e, "");
	free(e);
}

static void test_items_that_cannot_be_asked_for_are_refused(void)
{
	struct zuul_admin_request r;
	const char *why = NULL;
	struct zuul_admin_item no_patchset = {"scs", "org/repo", "check", "812", NULL, NULL};
	CHECK_INT(zuul_admin_enqueue(&no_patchset, &r, &why), -1);
	CHECK_STR(why, "the report names the change but not its patchset");
	struct zuul_admin_item nothing = {"scs", "org/repo", "check", NULL, NULL, NULL};
	CHECK_INT(zuul_admin_dequeue(&nothing, &r, &why), -1);
	CHECK_STR(why, "the report names neither a change nor a ref");
	struct zuul_admin_item no_pipeline = {"scs", "org/repo", NULL, "1", "1", NULL};
	CHECK_INT(zuul_admin_enqueue(&no_pipeline, &r, &why), -1);
	CHECK_STR(why, "the report names no pipeline");
	CHECK_INT(zuul_admin_autohold(&change_item, "", 1, "x", &r, &why), -1);
	CHECK_STR(why, "no job named");
	CHECK_INT(zuul_admin_autohold(&change_item, "lint", 1, NULL, &r, &why), -1);
	CHECK_STR(why, "no reason given");
	CHECK(r.method == NULL && r.path == NULL && r.body == NULL);
}

static void test_reasons_are_read_from_zuuls_answers(void)
{
	static const char page[] =
		"<!DOCTYPE html>\n<html>\n<head><title>400 Bad Request</title></head>\n<body>\n"
		"<h2>400 Bad Request</h2>\n<p>argument is not a valid regular expression: &quot;a&lt;b&quot; &amp; more</p>\n"
		"<pre id=\"traceback\"></pre></body></html>\n";
	char *r = zuul_admin_reason(400, page, sizeof page - 1);
	CHECK_STR(r, "argument is not a valid regular expression: \"a<b\" & more");
	free(r);
	static const char json[] = "{\"description\": \"Token has expired\", \"error\": \"TokenExpiredError\", "
				   "\"realm\": \"zuul\"}";
	r = zuul_admin_reason(401, json, sizeof json - 1);
	CHECK_STR(r, "Token has expired");
	free(r);
	r = zuul_admin_reason(403, "", 0);
	CHECK_STR(r, "not allowed by the tenant's authorization rules (403)");
	free(r);
	r = zuul_admin_reason(502, "", 0);
	CHECK_STR(r, "HTTP 502");
	free(r);
	r = zuul_admin_reason(500, "<p>\x1b[31mboom\n</p>", 17);
	CHECK_STR(r, "[31mboom");
	free(r);
}

/* ---- the client against the fake Zuul ---- */

static pid_t fake_pid = -1;
static char fake_url[64];
static char tmpdir[] = "/tmp/zmb-zuul-admin-XXXXXX";
static struct zuul_token_key *key;

static int fake_start(void)
{
	if (!mkdtemp(tmpdir))
		return -1;
	char pub[200], conf[200], port_file[200];
	snprintf(pub, sizeof pub, "%s/pub.pem", tmpdir);
	snprintf(conf, sizeof conf, "%s/zuul.json", tmpdir);
	snprintf(port_file, sizeof port_file, "%s/port", tmpdir);
	char *pem = NULL;
	size_t len = 0;
	FILE *f = fopen(ZMB_SOURCE_ROOT "/tests/data/config/secrets/zuul-actions.pem", "r");
	if (!f || getdelim(&pem, &len, '\0', f) < 0)
		return -1;
	fclose(f);
	char why[200];
	key = zuul_token_key_parse(pem, strlen(pem), why, sizeof why);
	free(pem);
	char *pub_pem = key ? zuul_token_public_pem(key) : NULL;
	f = fopen(pub, "w");
	fputs(pub_pem ? pub_pem : "", f);
	fclose(f);
	free(pub_pem);
	f = fopen(conf, "w");
	fprintf(f, "{\"auth\": {\"issuer_id\": \"zmb-test\", \"client_id\": \"zuul\", \"public_key_file\": \"%s\", "
		   "\"max_validity_time\": 120},"
		   " \"tenants\": {\"scs\": {\"projects\": [\"org/repo\"], \"pipelines\": [\"check\", \"periodic\"],"
		   " \"admins\": [\"@alice:hs\"]}}}", pub);
	fclose(f);
	fake_pid = fork();
	if (fake_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl("/usr/bin/python3", "python3", ZMB_SOURCE_ROOT "/tests/fake_zuul_admin.py", "--port", "0",
		      "--port-file", port_file, "--config", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int port = 0;
		f = fopen(port_file, "r");
		if (f) {
			int ok = fscanf(f, "%d", &port) == 1;
			fclose(f);
			if (ok && port > 0) {
				snprintf(fake_url, sizeof fake_url, "http://127.0.0.1:%d", port);
				return 0;
			}
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static void fake_stop(void)
{
	if (fake_pid > 0) {
		kill(fake_pid, SIGTERM);
		waitpid(fake_pid, NULL, 0);
	}
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	zuul_token_key_free(key);
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	strbuf_append(userdata, ptr, size * nmemb);
	return size * nmemb;
}

/* A blocking request to the fake's control API (a test may block). */
static cJSON *fake_control(const char *method, const char *path, const char *body)
{
	CURL *e = curl_easy_init();
	struct strbuf url = STRBUF_INIT, out = STRBUF_INIT;
	strbuf_printf(&url, "%s%s", fake_url, path);
	curl_easy_setopt(e, CURLOPT_URL, strbuf_str(&url));
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &out);
	curl_easy_perform(e);
	curl_easy_cleanup(e);
	cJSON *j = cJSON_Parse(strbuf_str(&out));
	strbuf_free(&url);
	strbuf_free(&out);
	return j;
}

struct outcome {
	long status;
	bool accepted;
	char reason[300];
	char body[600];
	bool done;
};

static void on_result(const struct zuul_admin_result *r, void *data)
{
	struct outcome *o = data;
	o->status = r->status;
	o->accepted = r->accepted;
	snprintf(o->reason, sizeof o->reason, "%s", r->reason ? r->reason : "");
	snprintf(o->body, sizeof o->body, "%s", r->body ? r->body : "");
	o->done = true;
}

static void stop_loop(struct loop *loop, void *data)
{
	(void)data;
	loop_stop(loop);
}

/* Sends req with a token for user and runs the loop until the answer came (or 30 s). */
static struct outcome call(const struct zuul_admin_request *req, const char *user)
{
	struct loop *loop = loop_new();
	struct zuul_admin *za = zuul_admin_new(loop);
	struct outcome o = {0};
	struct zuul_token_claims c = {"zmb-test", "zuul", user, (int64_t)time(NULL) - 5, 120, NULL};
	char *token = user ? zuul_token_mint(key, &c) : xstrdup("not-a-jwt");
	CHECK_INT(zuul_admin_send(za, fake_url, req, token, on_result, &o), 0);
	free(token);
	uint64_t guard = loop_timer_add(loop, 30000, stop_loop, NULL);
	while (!o.done) {
		loop_timer_add(loop, 20, stop_loop, NULL);
		loop_run(loop);
		if (!zuul_admin_in_flight(za))
			break;
	}
	loop_timer_cancel(loop, guard);
	zuul_admin_free(za);
	loop_free(loop);
	return o;
}

static void test_the_client_is_answered_as_zuul_answers(void)
{
	struct zuul_admin_item it = {"scs", "org/repo", "check", "12", "1", NULL};
	struct zuul_admin_request r;
	const char *why;
	zuul_admin_enqueue(&it, &r, &why);
	struct outcome o = call(&r, "@alice:hs");
	CHECK(o.accepted);
	CHECK_INT(o.status, 200);
	CHECK_STR(o.body, "true");
	/* the fake saw the token as Zuul would: the user is its uid claim */
	cJSON *reqs = fake_control("GET", "/_fake/requests", NULL);
	cJSON *last = cJSON_GetArrayItem(cJSON_GetObjectItem(reqs, "requests"), 0);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(last, "claims"), "__zuul_uid_claim")),
		  "@alice:hs");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(last, "body"), "change")), "12,1");
	cJSON_Delete(reqs);

	o = call(&r, "@mallory:hs");
	CHECK(!o.accepted);
	CHECK_INT(o.status, 403);
	CHECK_STR(o.reason, "not allowed by the tenant's authorization rules (403)");
	o = call(&r, NULL);
	CHECK_INT(o.status, 401);
	CHECK_STR(o.reason, "Auth Token could not be decoded");
	zuul_admin_request_clear(&r);

	struct zuul_admin_item other = {"scs", "org/nope", "check", "12", "1", NULL};
	zuul_admin_dequeue(&other, &r, &why);
	o = call(&r, "@alice:hs");
	CHECK_INT(o.status, 404);
	CHECK_STR(o.reason, "Unknown project");
	zuul_admin_request_clear(&r);
	struct zuul_admin_item gate = {"scs", "org/repo", "gate", "12", "1", NULL};
	zuul_admin_dequeue(&gate, &r, &why);
	o = call(&r, "@alice:hs");
	CHECK_INT(o.status, 400);
	CHECK_STR(o.reason, "Unknown pipeline");
	zuul_admin_request_clear(&r);
}

static void test_autoholds_are_created_listed_and_deleted(void)
{
	struct zuul_admin_item it = {"scs", "org/repo", "periodic", NULL, NULL, "refs/heads/stable/1.0"};
	struct zuul_admin_request r;
	const char *why;
	zuul_admin_autohold(&it, "lint", 3, "look at the node", &r, &why);
	struct outcome o = call(&r, "@alice:hs");
	CHECK(o.accepted);
	zuul_admin_request_clear(&r);
	zuul_admin_autohold_list("scs", &r, &why);
	o = call(&r, "@alice:hs");
	CHECK_INT(o.status, 200);
	cJSON *list = cJSON_Parse(o.body);
	cJSON *h = cJSON_GetArrayItem(list, 0);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(h, "ref_filter")), "refs/heads/stable/1\\.0");
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(h, "max_count")), 3);
	char id[32];
	snprintf(id, sizeof id, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(h, "id")) ?: "");
	cJSON_Delete(list);
	zuul_admin_request_clear(&r);
	zuul_admin_autohold_delete("scs", id, &r, &why);
	o = call(&r, "@alice:hs");
	CHECK(o.accepted);
	CHECK_INT(o.status, 204);
	o = call(&r, "@alice:hs");
	CHECK_INT(o.status, 404);
	char want[80];
	snprintf(want, sizeof want, "Hold request %s not found.", id);
	CHECK_STR(o.reason, want);
	zuul_admin_request_clear(&r);
}

static void test_an_unreachable_zuul_is_told_as_such(void)
{
	cJSON_Delete(fake_control("POST", "/_fake/faults", "{\"action\": \"drop\", \"path\": \"enqueue\"}"));
	struct zuul_admin_item it = {"scs", "org/repo", "check", "12", "1", NULL};
	struct zuul_admin_request r;
	const char *why;
	zuul_admin_enqueue(&it, &r, &why);
	struct outcome o = call(&r, "@alice:hs");
	CHECK(!o.accepted);
	CHECK_INT(o.status, 0);
	CHECK(o.reason[0] != '\0');
	cJSON_Delete(fake_control("DELETE", "/_fake/faults", NULL));
	zuul_admin_request_clear(&r);
}

int main(void)
{
	RUN(test_enqueue_sends_the_change_or_the_ref_with_null_revisions);
	RUN(test_dequeue_sends_exactly_one_of_change_and_ref);
	RUN(test_autohold_matches_the_ref_literally_and_caps_the_count);
	RUN(test_names_are_percent_encoded_but_the_projects_slash);
	RUN(test_regex_escape_is_pythons);
	RUN(test_items_that_cannot_be_asked_for_are_refused);
	RUN(test_reasons_are_read_from_zuuls_answers);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fake_start() != 0) {
		printf("# cannot start tests/fake_zuul_admin.py\n");
		return 1;
	}
	RUN(test_the_client_is_answered_as_zuul_answers);
	RUN(test_autoholds_are_created_listed_and_deleted);
	RUN(test_an_unreachable_zuul_is_told_as_such);
	fake_stop();
	curl_global_cleanup();
	return test_done();
}
