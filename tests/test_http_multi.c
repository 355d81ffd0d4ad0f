/* Tests for http_multi: libcurl's multi interface on our loop, against a real local HTTP
 * server (tests/fake_homeserver.py, its /versions answer and its hang faults): bodies, the
 * cap, cancel, many transfers at once, and teardown with transfers running or from inside a
 * callback (the sanitizer build checks that nothing leaks or is used after free). */
#include "http_multi.h"

#include "fake_hs.h"
#include "loop.h"
#include "test.h"

#define VERSIONS "/_matrix/client/versions"

/* What the callbacks saw, per transfer. */
struct seen {
	int calls;
	CURLcode code;
	long status;
	bool too_big;
	char error[CURL_ERROR_SIZE];
	struct strbuf body;       /* copied, or taken with http_result_take_body */
	char content_type[80];
	struct http_multi *free_me; /* frees the driver from inside its callback */
	bool take;
	int *counter;             /* bumped by every callback sharing it */
};

static void on_done(const struct http_result *r, void *data)
{
	struct seen *s = data;
	s->calls++;
	if (s->counter)
		(*s->counter)++;
	s->code = r->code;
	s->status = r->status;
	s->too_big = r->too_big;
	snprintf(s->error, sizeof s->error, "%s", r->error ? r->error : "");
	if (s->take) {
		http_result_take_body(r, &s->body);
	} else {
		strbuf_reset(&s->body);
		strbuf_append(&s->body, r->body, r->len);
	}
	struct curl_header *h;
	if (curl_easy_header(r->easy, "Content-Type", 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
		snprintf(s->content_type, sizeof s->content_type, "%s", h->value);
	if (s->free_me)
		http_multi_free(s->free_me);
}

static CURL *easy_for(const char *path)
{
	CURL *e = curl_easy_init();
	struct strbuf url = STRBUF_INIT;
	strbuf_printf(&url, "%s%s", fake_hs_url, path);
	CHECK_INT(http_easy_defaults(e, 20000L), CURLE_OK);
	CHECK_INT(curl_easy_setopt(e, CURLOPT_URL, strbuf_str(&url)), CURLE_OK);
	strbuf_free(&url);
	return e;
}

static void stop_loop(struct loop *loop, void *data)
{
	(void)data;
	loop_stop(loop);
}

static void guard_fired(struct loop *loop, void *data)
{
	*(bool *)data = true;
	loop_stop(loop);
}

/* Runs the loop in short turns until *count reaches want, or 30 s went by (a hung test
 * fails its checks instead of hanging meson). */
static void run_until(struct loop *loop, const int *count, int want)
{
	bool expired = false;
	uint64_t guard = loop_timer_add(loop, 30000, guard_fired, &expired);
	while (*count < want && !expired) {
		uint64_t t = loop_timer_add(loop, 20, stop_loop, NULL);
		loop_run(loop);
		loop_timer_cancel(loop, t);
	}
	loop_timer_cancel(loop, guard);
}

/* Requests the fake received for path (it logs a request before acting on its faults). */
static int requests_for(const char *path)
{
	cJSON *reqs = NULL;
	fake_hs_call("GET", "/_fake/requests", NULL, NULL, &reqs);
	int n = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, reqs)
	{
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "path"));
		if (p && strcmp(p, path) == 0)
			n++;
	}
	cJSON_Delete(reqs);
	return n;
}

/* Runs the loop until the fake saw n requests for path (or 30 s). */
static void run_until_requested(struct loop *loop, const char *path, int n)
{
	for (int i = 0; i < 1500 && requests_for(path) < n; i++) {
		uint64_t t = loop_timer_add(loop, 20, stop_loop, NULL);
		loop_run(loop);
		loop_timer_cancel(loop, t);
	}
}

static void reset_fake(void)
{
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
}

static void hang(const char *path_regex, int count)
{
	char rule[200];
	snprintf(rule, sizeof rule, "{\"path\":\"%s\",\"action\":\"hang\",\"seconds\":20,\"count\":%d}", path_regex,
		 count);
	CHECK_INT(fake_hs_call("POST", "/_fake/faults", rule, NULL, NULL), 200);
}

static void test_a_transfer_completes_with_its_body_status_and_headers(void)
{
	reset_fake();
	struct loop *loop = loop_new();
	struct http_multi *hm = http_multi_new(loop);
	struct seen s = {0};
	CURL *e = easy_for(VERSIONS);
	CHECK(http_multi_start(hm, e, 65536, on_done, &s, NULL) != NULL);
	CHECK_INT(http_multi_running(hm), 1);
	run_until(loop, &s.calls, 1);
	CHECK_INT(s.calls, 1);
	CHECK_INT(s.code, CURLE_OK);
	CHECK_INT(s.status, 200);
	CHECK(!s.too_big);
	CHECK_STR(s.error, "");
	CHECK_INT(http_multi_running(hm), 0);
	cJSON *json = cJSON_Parse(strbuf_str(&s.body));
	CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(json, "versions")));
	cJSON_Delete(json);
	CHECK_CONTAINS(s.content_type, "application/json");
	/* the server saw what the caller set up: our User-Agent */
	cJSON *reqs = NULL;
	fake_hs_call("GET", "/_fake/requests", NULL, NULL, &reqs);
	const cJSON *headers = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(reqs, 0), "headers");
	CHECK_CONTAINS(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(headers, "User-Agent")),
		       "zuul-matrix-bridge/");
	cJSON_Delete(reqs);

	/* the same easy handle runs again once its callback is done; the body can be taken */
	size_t first_len = s.body.len;
	s.take = true;
	CHECK(http_multi_start(hm, e, 65536, on_done, &s, NULL) != NULL);
	run_until(loop, &s.calls, 2);
	CHECK_INT(s.calls, 2);
	CHECK_INT(s.status, 200);
	CHECK_INT(s.body.len, first_len);
	CHECK_CONTAINS(strbuf_str(&s.body), "\"versions\"");

	http_multi_free(hm);
	curl_easy_cleanup(e);
	strbuf_free(&s.body);
	loop_free(loop);
}

static void test_a_body_over_the_cap_fails_the_transfer(void)
{
	reset_fake();
	struct loop *loop = loop_new();
	struct http_multi *hm = http_multi_new(loop);
	/* learn the answer's size, then ask for it with a cap one byte short, and exactly */
	struct seen whole = {0}, short_by_one = {0}, exact = {0};
	CURL *e1 = easy_for(VERSIONS), *e2 = easy_for(VERSIONS), *e3 = easy_for(VERSIONS);
	http_multi_start(hm, e1, 65536, on_done, &whole, NULL);
	run_until(loop, &whole.calls, 1);
	CHECK_INT(whole.code, CURLE_OK);
	CHECK(whole.body.len > 10);
	http_multi_start(hm, e2, whole.body.len - 1, on_done, &short_by_one, NULL);
	http_multi_start(hm, e3, whole.body.len, on_done, &exact, NULL);
	int both = 0;
	short_by_one.counter = exact.counter = &both;
	run_until(loop, &both, 2);
	CHECK_INT(short_by_one.calls, 1);
	CHECK(short_by_one.too_big);
	CHECK_INT(short_by_one.code, CURLE_WRITE_ERROR);
	CHECK(short_by_one.error[0] != '\0');
	CHECK(short_by_one.body.len < whole.body.len);
	CHECK_INT(exact.calls, 1);
	CHECK(!exact.too_big);
	CHECK_INT(exact.code, CURLE_OK);
	CHECK_STR(strbuf_str(&exact.body), strbuf_str(&whole.body));
	http_multi_free(hm);
	curl_easy_cleanup(e1);
	curl_easy_cleanup(e2);
	curl_easy_cleanup(e3);
	strbuf_free(&whole.body);
	strbuf_free(&short_by_one.body);
	strbuf_free(&exact.body);
	loop_free(loop);
}

static void test_a_cancelled_transfer_never_calls_back(void)
{
	reset_fake();
	hang("versions", 1);
	struct loop *loop = loop_new();
	struct http_multi *hm = http_multi_new(loop);
	struct seen hung = {0}, later = {0};
	CURL *e = easy_for(VERSIONS);
	struct http_transfer *t = http_multi_start(hm, e, 65536, on_done, &hung, NULL);
	run_until_requested(loop, VERSIONS, 1);
	CHECK_INT(requests_for(VERSIONS), 1);
	CHECK_INT(http_multi_running(hm), 1);
	http_multi_cancel(hm, t);
	CHECK_INT(http_multi_running(hm), 0);
	/* the server lets go of the hung request; nothing may reach the cancelled callback, and
	 * the handle, the caller's again, runs a new transfer on the same driver */
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
	CHECK(http_multi_start(hm, e, 65536, on_done, &later, NULL) != NULL);
	run_until(loop, &later.calls, 1);
	CHECK_INT(later.calls, 1);
	CHECK_INT(later.status, 200);
	CHECK_INT(hung.calls, 0);
	http_multi_free(hm);
	curl_easy_cleanup(e);
	strbuf_free(&later.body);
	loop_free(loop);
}

static void test_freeing_the_driver_drops_running_transfers(void)
{
	reset_fake();
	hang("versions", 3);
	struct loop *loop = loop_new();
	struct http_multi *hm = http_multi_new(loop);
	struct seen s[3] = {{0}};
	CURL *e[3];
	for (int i = 0; i < 3; i++) {
		e[i] = easy_for(VERSIONS);
		CHECK(http_multi_start(hm, e[i], 65536, on_done, &s[i], NULL) != NULL);
	}
	run_until_requested(loop, VERSIONS, 3);
	CHECK_INT(requests_for(VERSIONS), 3);
	CHECK_INT(http_multi_running(hm), 3);
	http_multi_free(hm);
	/* the loop keeps no watch or timer of the driver: turns after the free run nothing of
	 * it (the sanitizer build would see a use after free) */
	bool expired = false;
	loop_timer_add(loop, 50, guard_fired, &expired);
	while (!expired)
		loop_run(loop);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(s[i].calls, 0);
		curl_easy_cleanup(e[i]);
	}
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
	loop_free(loop);
}

static void test_a_callback_may_free_the_driver(void)
{
	reset_fake();
	/* two transfers hang, a third is answered (the fake's control API knows no faults): its
	 * callback frees the driver under the other two */
	hang("versions", 2);
	struct loop *loop = loop_new();
	struct http_multi *hm = http_multi_new(loop);
	struct seen hung[2] = {{0}}, answered = {0};
	CURL *eh[2], *ea = easy_for("/_fake/faults");
	for (int i = 0; i < 2; i++) {
		eh[i] = easy_for(VERSIONS);
		http_multi_start(hm, eh[i], 65536, on_done, &hung[i], NULL);
	}
	run_until_requested(loop, VERSIONS, 2);
	answered.free_me = hm;
	http_multi_start(hm, ea, 65536, on_done, &answered, NULL);
	run_until(loop, &answered.calls, 1);
	CHECK_INT(answered.calls, 1);
	CHECK_INT(answered.status, 200);
	CHECK_CONTAINS(strbuf_str(&answered.body), "\"rules\"");
	bool expired = false;
	loop_timer_add(loop, 50, guard_fired, &expired);
	while (!expired)
		loop_run(loop);
	CHECK_INT(hung[0].calls + hung[1].calls, 0);
	for (int i = 0; i < 2; i++)
		curl_easy_cleanup(eh[i]);
	curl_easy_cleanup(ea);
	strbuf_free(&answered.body);
	fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL);
	loop_free(loop);
}

#define MANY 64

static void test_many_transfers_at_once_each_complete_once(void)
{
	reset_fake();
	struct loop *loop = loop_new();
	struct http_multi *hm = http_multi_new(loop);
	static struct seen s[MANY];
	CURL *e[MANY];
	int done = 0;
	memset(s, 0, sizeof s);
	/* more transfers than connections: the rest wait inside curl */
	http_multi_max_host_connections(hm, 8);
	for (int i = 0; i < MANY; i++) {
		e[i] = easy_for(VERSIONS);
		s[i].counter = &done;
		CHECK(http_multi_start(hm, e[i], 65536, on_done, &s[i], NULL) != NULL);
	}
	CHECK_INT(http_multi_running(hm), MANY);
	run_until(loop, &done, MANY);
	CHECK_INT(done, MANY);
	CHECK_INT(http_multi_running(hm), 0);
	int ok = 0;
	for (int i = 0; i < MANY; i++) {
		if (s[i].calls == 1 && s[i].status == 200 && strstr(strbuf_str(&s[i].body), "\"versions\""))
			ok++;
		curl_easy_cleanup(e[i]);
		strbuf_free(&s[i].body);
	}
	CHECK_INT(ok, MANY);
	CHECK_INT(requests_for(VERSIONS), MANY);
	http_multi_free(hm);
	loop_free(loop);
}

static void test_a_refused_connection_is_a_curl_error(void)
{
	reset_fake();
	struct loop *loop = loop_new();
	struct http_multi *hm = http_multi_new(loop);
	struct seen s = {0};
	CURL *e = curl_easy_init();
	http_easy_defaults(e, 20000L);
	/* port 1 on loopback: nobody listens there */
	curl_easy_setopt(e, CURLOPT_URL, "http://127.0.0.1:1/");
	http_multi_start(hm, e, 65536, on_done, &s, NULL);
	run_until(loop, &s.calls, 1);
	CHECK_INT(s.calls, 1);
	CHECK_INT(s.code, CURLE_COULDNT_CONNECT);
	CHECK_INT(s.status, 0);
	CHECK(s.error[0] != '\0');
	/* a protocol other than http(s) is refused by the defaults */
	struct seen f = {0};
	curl_easy_setopt(e, CURLOPT_URL, "file:///etc/hostname");
	http_multi_start(hm, e, 65536, on_done, &f, NULL);
	run_until(loop, &f.calls, 1);
	CHECK_INT(f.code, CURLE_UNSUPPORTED_PROTOCOL);
	CHECK_INT(f.body.len, 0);
	http_multi_free(hm);
	curl_easy_cleanup(e);
	strbuf_free(&s.body);
	strbuf_free(&f.body);
	loop_free(loop);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fake_hs_start() != 0) {
		printf("# cannot start tests/fake_homeserver.py\n");
		return 1;
	}
	RUN(test_a_transfer_completes_with_its_body_status_and_headers);
	RUN(test_a_body_over_the_cap_fails_the_transfer);
	RUN(test_a_cancelled_transfer_never_calls_back);
	RUN(test_freeing_the_driver_drops_running_transfers);
	RUN(test_a_callback_may_free_the_driver);
	RUN(test_many_transfers_at_once_each_complete_once);
	RUN(test_a_refused_connection_is_a_curl_error);
	fake_hs_stop();
	curl_global_cleanup();
	return test_done();
}
