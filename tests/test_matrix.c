/* Tests of the Matrix client: real HTTP over loopback against tests/fake_homeserver.py
 * (started here as a subprocess), driven by the real loop; plus the pure helpers. */
#include "matrix.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "loop.h"
#include "strbuf.h"
#include "test.h"
#include "fake_hs.h"

#ifndef ZMB_SOURCE_ROOT
#define ZMB_SOURCE_ROOT "."
#endif

/* ---- the fake homeserver subprocess and its control API ---- */

static void add_fault(const char *rule_json)
{
	long st = fake_hs_call("POST", "/_fake/faults", rule_json, NULL, NULL);
	if (st != 200)
		printf("# could not install fault %s: HTTP %ld\n", rule_json, st);
}

static void clear_faults(void) { fake_hs_call("DELETE", "/_fake/faults", NULL, NULL, NULL); }

/* ---- running the loop until the expected callbacks arrived ---- */

static struct loop *loop;
static int pending;        /* callbacks still expected */
static bool deadline_hit;

/* What a callback saw, copied out (the response is only valid during the callback). */
struct result {
	int calls;
	long status;
	bool timed_out;
	bool transient;
	char *curl_error;
	char *errcode;
	char *error;
	char *body;
	long retry_after_ms;
	bool had_json;
	char *user_id;
	char *room_id;
	char *event_id;
	int local_port; /* our end of the one connection to the fake, when exactly one */
	size_t in_flight_seen;
};

static struct matrix_client *current_mc;

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The local port of this process' one TCP connection to the fake homeserver; 0 if
 * there is none, -1 if there are several. Tells connection reuse apart from new
 * connections without trusting the client's own account of it. */
static int connection_local_port(void)
{
	int found = 0;
	for (int fd = 3; fd < 1024; fd++) {
		struct stat st;
		if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
			continue;
		struct sockaddr_in peer = {0}, self = {0};
		socklen_t len = sizeof peer;
		if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0 || peer.sin_family != AF_INET ||
		    ntohs(peer.sin_port) != fake_hs_port)
			continue;
		len = sizeof self;
		if (getsockname(fd, (struct sockaddr *)&self, &len) < 0)
			continue;
		if (found)
			return -1;
		found = ntohs(self.sin_port);
	}
	return found;
}

static void result_clear(struct result *r)
{
	free(r->curl_error);
	free(r->errcode);
	free(r->error);
	free(r->body);
	free(r->user_id);
	free(r->room_id);
	free(r->event_id);
	memset(r, 0, sizeof *r);
}

static void on_response(const struct matrix_response *resp, void *data)
{
	struct result *r = data;
	result_clear(r);
	r->calls = 1;
	r->status = resp->status;
	r->timed_out = resp->timed_out;
	r->transient = matrix_response_is_transient(resp);
	r->curl_error = xstrdup(resp->curl_error);
	r->errcode = xstrdup(resp->errcode);
	r->error = xstrdup(resp->error);
	r->body = xstrndup(resp->body, resp->body_len);
	r->retry_after_ms = resp->retry_after_ms;
	r->had_json = resp->json != NULL;
	r->user_id = xstrdup(json_str(resp->json, "user_id"));
	r->room_id = xstrdup(json_str(resp->json, "room_id"));
	r->event_id = xstrdup(json_str(resp->json, "event_id"));
	r->local_port = connection_local_port();
	r->in_flight_seen = current_mc ? matrix_in_flight(current_mc) : 0;
	if (--pending <= 0)
		loop_stop(loop);
}

static void on_deadline(struct loop *l, void *data)
{
	(void)data;
	deadline_hit = true;
	loop_stop(l);
}

/* Runs the loop until `expect` callbacks arrived or max_ms passed; true if they all did. */
static bool run_for(int expect, uint64_t max_ms)
{
	pending = expect;
	deadline_hit = false;
	uint64_t t = loop_timer_add(loop, max_ms, on_deadline, NULL);
	loop_run(loop);
	loop_timer_cancel(loop, t);
	if (pending > 0)
		printf("# %d callback(s) still missing after %llu ms\n", pending, (unsigned long long)max_ms);
	return pending <= 0;
}

/* Runs the loop for ms, expecting nothing in particular. */
static void run_idle(uint64_t ms)
{
	pending = 1 << 30;
	uint64_t t = loop_timer_add(loop, ms, on_deadline, NULL);
	loop_run(loop);
	loop_timer_cancel(loop, t);
}

static struct config_matrix make_cfg(const char *token, int timeout_s)
{
	struct config_matrix cfg = {0};
	cfg.homeserver = fake_hs_url;
	cfg.access_token = (char *)token;
	cfg.tls_verify = true;
	cfg.request_timeout_s = timeout_s;
	cfg.retry_min_ms = 1000;
	cfg.retry_max_ms = 300000;
	return cfg;
}

/* ---- pure helpers ---- */

static void check_escape(const char *in, const char *want)
{
	char *got = matrix_escape_segment(in);
	CHECK_STR(got, want);
	free(got);
}

static void test_escape_segment_keeps_only_unreserved(void)
{
	check_escape("!abc:localhost", "%21abc%3Alocalhost");
	check_escape("#alerts:example.org", "%23alerts%3Aexample.org");
	check_escape("$event/id+x=y", "%24event%2Fid%2Bx%3Dy");
	check_escape("AZaz09-._~", "AZaz09-._~");
	check_escape("a b?c&d%", "a%20b%3Fc%26d%25");
	check_escape("\xc3\xa9", "%C3%A9"); /* UTF-8 bytes, upper-case hex */
	check_escape("", "");
	CHECK(matrix_escape_segment(NULL) == NULL);
}

static void test_transient_classification(void)
{
	struct {
		long status;
		const char *errcode;
		bool want;
	} cases[] = {{0, NULL, true},
		     {500, NULL, true},
		     {502, NULL, true},
		     {503, NULL, true},
		     {504, "M_UNKNOWN", true},
		     {429, NULL, true},
		     {408, NULL, true},
		     {400, NULL, false},
		     {401, NULL, false},
		     {403, NULL, false},
		     {403, "M_FORBIDDEN", false},
		     /* over the monthly active users, or disabled: the spec says back off */
		     {403, "M_RESOURCE_LIMIT_EXCEEDED", true},
		     {400, "M_RESOURCE_LIMIT_EXCEEDED", false},
		     {404, NULL, false},
		     {200, NULL, false}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct matrix_response resp = {.status = cases[i].status, .errcode = cases[i].errcode, .retry_after_ms = -1};
		bool got = matrix_response_is_transient(&resp);
		if (got != cases[i].want)
			printf("# status %ld %s: expected transient=%d, got %d\n", cases[i].status,
			       cases[i].errcode ? cases[i].errcode : "-", cases[i].want, got);
		CHECK(got == cases[i].want);
	}
}

/* ---- over HTTP ---- */

static void test_whoami_returns_user_id_and_sends_identity_headers(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0};
	fake_hs_call("DELETE", "/_fake/requests", NULL, NULL, NULL);
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK_INT(matrix_in_flight(mc), 1);
	CHECK(run_for(1, 5000));
	CHECK_INT(r.status, 200);
	CHECK_STR(r.user_id, "@zuul-bot:localhost");
	CHECK(r.curl_error == NULL && r.errcode == NULL);
	CHECK_INT(r.retry_after_ms, -1);
	CHECK_INT(matrix_in_flight(mc), 0);

	cJSON *reqs = NULL;
	fake_hs_call("GET", "/_fake/requests", NULL, NULL, &reqs);
	CHECK_INT(cJSON_GetArraySize(reqs), 1);
	const cJSON *rec = cJSON_GetArrayItem(reqs, 0);
	const cJSON *headers = cJSON_GetObjectItemCaseSensitive(rec, "headers");
	CHECK_STR(json_str(rec, "token"), "bridge-token");
	CHECK_STR(json_str(rec, "path"), "/_matrix/client/v3/account/whoami");
	CHECK_STR(json_str(headers, "User-Agent"), "zuul-matrix-bridge/" ZMB_VERSION);
	cJSON_Delete(reqs);
	result_clear(&r);
	matrix_client_free(mc);
}

static void test_whoami_with_bad_token_is_permanent_401(void)
{
	struct config_matrix cfg = make_cfg("not-a-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0};
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(r.status, 401);
	CHECK_STR(r.errcode, "M_UNKNOWN_TOKEN");
	CHECK(r.error != NULL);
	CHECK(!r.transient);
	result_clear(&r);
	matrix_client_free(mc);
}

static void test_join_by_alias_resolves_room_id(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0}, unknown = {0};
	CHECK_INT(matrix_join(mc, "#alerts:localhost", on_response, &r), 0);
	CHECK_INT(matrix_join(mc, "#nowhere:localhost", on_response, &unknown), 0);
	CHECK(run_for(2, 5000));
	CHECK_INT(r.status, 200);
	CHECK_STR(r.room_id, "!alerts:localhost");
	CHECK_INT(unknown.status, 404);
	CHECK_STR(unknown.errcode, "M_NOT_FOUND");
	CHECK(!unknown.transient);
	result_clear(&r);
	result_clear(&unknown);
	matrix_client_free(mc);
}

static void test_send_returns_event_id_and_same_txn_is_idempotent(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result a = {0}, b = {0}, c = {0};
	const char *content = "{\"msgtype\":\"m.text\",\"body\":\"hello\"}";
	CHECK_INT(matrix_send(mc, "!alerts:localhost", "m.room.message", "txn-same", content, on_response, &a), 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(matrix_send(mc, "!alerts:localhost", "m.room.message", "txn-same", content, on_response, &b), 0);
	CHECK_INT(matrix_send(mc, "!alerts:localhost", "m.room.message", "txn-other", content, on_response, &c), 0);
	CHECK(run_for(2, 5000));
	CHECK_INT(a.status, 200);
	CHECK_INT(b.status, 200);
	CHECK(a.event_id && a.event_id[0] == '$');
	CHECK_STR(b.event_id, a.event_id);
	CHECK(c.event_id && a.event_id && strcmp(c.event_id, a.event_id) != 0);

	/* The request as the homeserver saw it: escaped room id, JSON body and type. */
	cJSON *reqs = NULL;
	fake_hs_call("GET", "/_fake/requests", NULL, NULL, &reqs);
	const cJSON *last = cJSON_GetArrayItem(reqs, cJSON_GetArraySize(reqs) - 1);
	CHECK_CONTAINS(json_str(last, "path"), "/_matrix/client/v3/rooms/%21alerts%3Alocalhost/send/m.room.message/");
	CHECK_STR(json_str(last, "method"), "PUT");
	CHECK_STR(json_str(cJSON_GetObjectItemCaseSensitive(last, "headers"), "Content-Type"), "application/json");
	CHECK_STR(json_str(cJSON_GetObjectItemCaseSensitive(last, "body"), "body"), "hello");
	cJSON_Delete(reqs);
	result_clear(&a);
	result_clear(&b);
	result_clear(&c);
	matrix_client_free(mc);
}

static void test_server_error_500_is_transient(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0};
	add_fault("{\"path\":\"whoami\",\"status\":500}");
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(r.status, 500);
	CHECK_STR(r.errcode, "M_UNKNOWN");
	CHECK(r.transient);
	CHECK_INT(r.retry_after_ms, -1);
	clear_faults();
	result_clear(&r);
	matrix_client_free(mc);
}

static void describe_into(const struct matrix_response *resp, void *data)
{
	struct strbuf *out = data;
	matrix_response_describe(resp, out);
	if (matrix_response_is_transient(resp))
		strbuf_puts(out, " [transient]");
	if (--pending <= 0)
		loop_stop(loop);
}

/* Synapse's answer for a server over its monthly active users (auth_blocking.py): 403,
 * but nothing is wrong with the request; the description names whom to ask. */
static void test_resource_limit_403_is_transient_and_names_the_admin(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct strbuf got = STRBUF_INIT;
	add_fault("{\"path\":\"/send/\",\"status\":403,\"body\":{\"errcode\":\"M_RESOURCE_LIMIT_EXCEEDED\","
		  "\"error\":\"Monthly Active User Limit Exceeded\",\"admin_contact\":\"mailto:ops@example.org\","
		  "\"limit_type\":\"monthly_active_user\"}}");
	CHECK_INT(matrix_send(mc, "!alerts:localhost", "m.room.message", "txn-mau", "{\"body\":\"x\"}", describe_into,
			      &got),
		  0);
	CHECK(run_for(1, 5000));
	CHECK_STR(strbuf_str(&got), "HTTP 403 M_RESOURCE_LIMIT_EXCEEDED: Monthly Active User Limit Exceeded "
				    "(limit_type monthly_active_user) (admin_contact mailto:ops@example.org) [transient]");
	clear_faults();
	strbuf_free(&got);
	matrix_client_free(mc);
}

static void test_rate_limit_429_parses_retry_after_ms_from_body(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0};
	/* The fake also sends "Retry-After: 3"; the body's exact value must win. */
	add_fault("{\"path\":\"/send/\",\"status\":429,\"retry_after_ms\":2500}");
	CHECK_INT(matrix_send(mc, "!alerts:localhost", "m.room.message", "txn-429", "{\"body\":\"x\"}", on_response, &r), 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(r.status, 429);
	CHECK_STR(r.errcode, "M_LIMIT_EXCEEDED");
	CHECK_INT(r.retry_after_ms, 2500);
	CHECK(r.transient);
	clear_faults();
	result_clear(&r);
	matrix_client_free(mc);
}

static void test_retry_after_header_alone_is_used_and_non_object_body_has_no_json(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0}, ok = {0};
	/* A body that is not a JSON object: no retry_after_ms in it, only the header. */
	add_fault("{\"path\":\"whoami\",\"status\":429,\"retry_after_ms\":4000,\"body\":\"slow down\"}");
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(r.status, 429);
	CHECK(!r.had_json);
	CHECK(r.errcode == NULL);
	CHECK_INT(r.retry_after_ms, 4000);
	CHECK_STR(r.body, "\"slow down\"");

	/* A 200 that is not a JSON object is still a 200, with json NULL. */
	add_fault("{\"path\":\"whoami\",\"status\":200,\"body\":[1,2]}");
	CHECK_INT(matrix_whoami(mc, on_response, &ok), 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(ok.status, 200);
	CHECK(!ok.had_json);
	CHECK_INT(ok.retry_after_ms, -1);
	CHECK_STR(ok.body, "[1, 2]");
	clear_faults();
	result_clear(&r);
	result_clear(&ok);
	matrix_client_free(mc);
}

static void test_dropped_connection_is_transport_failure(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result warm = {0}, r = {0};
	CHECK_INT(matrix_whoami(mc, on_response, &warm), 0);
	CHECK(run_for(1, 5000));
	/* Twice: curl retries once on a fresh connection when a reused one dies. */
	add_fault("{\"path\":\"whoami\",\"action\":\"drop\",\"count\":2}");
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(r.status, 0);
	CHECK(r.curl_error != NULL);
	CHECK(!r.timed_out);
	CHECK(r.transient);
	CHECK(!r.had_json);
	clear_faults();
	result_clear(&warm);
	result_clear(&r);
	matrix_client_free(mc);
}

static void test_hang_longer_than_request_timeout_times_out(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 1);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0};
	add_fault("{\"path\":\"whoami\",\"action\":\"hang\",\"seconds\":10}");
	uint64_t t0 = loop_now_ms(loop);
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK(run_for(1, 4000));
	uint64_t took = loop_now_ms(loop) - t0;
	CHECK_INT(r.status, 0);
	CHECK(r.timed_out);
	CHECK(r.transient);
	CHECK(r.curl_error != NULL);
	if (took < 900 || took > 2500)
		printf("# timed out after %llu ms, expected about 1000\n", (unsigned long long)took);
	CHECK(took >= 900 && took <= 2500);
	clear_faults(); /* releases the hung server thread */
	result_clear(&r);
	matrix_client_free(mc);
}

static void test_per_request_timeout_overrides_request_timeout_both_ways(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 1);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result slow = {0}, hung = {0};

	/* Longer: a 1.5 s answer arrives although request_timeout_s is 1. */
	add_fault("{\"path\":\"whoami\",\"action\":\"delay\",\"seconds\":1.5}");
	CHECK_INT(matrix_request_timeout(mc, "GET", "/_matrix/client/v3/account/whoami", NULL, 4000, on_response,
					 &slow),
		  0);
	CHECK(run_for(1, 6000));
	CHECK_INT(slow.status, 200);
	CHECK_STR(slow.user_id, "@zuul-bot:localhost");
	CHECK(!slow.timed_out);

	/* Shorter: a hang is cut after 400 ms, well before the 1 s default. */
	add_fault("{\"path\":\"whoami\",\"action\":\"hang\",\"seconds\":10}");
	uint64_t t0 = loop_now_ms(loop);
	CHECK_INT(matrix_request_timeout(mc, "GET", "/_matrix/client/v3/account/whoami", NULL, 400, on_response,
					 &hung),
		  0);
	CHECK(run_for(1, 4000));
	uint64_t took = loop_now_ms(loop) - t0;
	CHECK_INT(hung.status, 0);
	CHECK(hung.timed_out);
	if (took < 350 || took > 900)
		printf("# timed out after %llu ms, expected about 400\n", (unsigned long long)took);
	CHECK(took >= 350 && took <= 900);
	clear_faults();
	result_clear(&slow);
	result_clear(&hung);
	matrix_client_free(mc);
}

static void test_oversized_body_is_refused(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0};
	size_t big = 9u * 1024 * 1024;
	struct strbuf rule = STRBUF_INIT;
	strbuf_puts(&rule, "{\"path\":\"whoami\",\"status\":200,\"body\":\"");
	for (size_t i = 0; i < big; i++)
		strbuf_putc(&rule, 'x');
	strbuf_puts(&rule, "\"}");
	add_fault(strbuf_str(&rule));
	strbuf_free(&rule);
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK(run_for(1, 10000));
	CHECK_INT(r.status, 0);
	CHECK_CONTAINS(r.curl_error, "larger than");
	clear_faults();
	result_clear(&r);
	matrix_client_free(mc);
}

enum { N_CONCURRENT = 40 };

static void test_many_concurrent_requests_all_complete(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 10);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	static struct result rs[N_CONCURRENT];
	for (int i = 0; i < N_CONCURRENT; i++) {
		char txn[32];
		snprintf(txn, sizeof txn, "concurrent-%d", i);
		CHECK_INT(matrix_send(mc, "!alerts:localhost", "m.room.message", txn, "{\"body\":\"c\"}", on_response,
				      &rs[i]),
			  0);
	}
	CHECK_INT(matrix_in_flight(mc), N_CONCURRENT);
	CHECK(run_for(N_CONCURRENT, 10000));
	int ok = 0, distinct = 0;
	for (int i = 0; i < N_CONCURRENT; i++) {
		ok += rs[i].calls == 1 && rs[i].status == 200 && rs[i].event_id;
		bool seen = false;
		for (int j = 0; j < i && rs[i].event_id; j++)
			seen = seen || (rs[j].event_id && strcmp(rs[i].event_id, rs[j].event_id) == 0);
		distinct += rs[i].event_id && !seen;
	}
	CHECK_INT(ok, N_CONCURRENT);
	CHECK_INT(distinct, N_CONCURRENT);
	CHECK_INT(matrix_in_flight(mc), 0);
	for (int i = 0; i < N_CONCURRENT; i++)
		result_clear(&rs[i]);
	matrix_client_free(mc);
}

/* Sequential requests, each started from the previous one's callback (which must
 * work), all over one kept-alive connection. */
enum { N_SEQUENTIAL = 8 };
static struct result chain[N_SEQUENTIAL];
static int chain_next;

static void on_chain(const struct matrix_response *resp, void *data)
{
	on_response(resp, data);
	if (chain_next < N_SEQUENTIAL) {
		int i = chain_next++;
		if (matrix_whoami(current_mc, on_chain, &chain[i]) < 0)
			printf("# starting request %d from a callback failed\n", i);
	}
}

static void test_sequential_requests_reuse_one_connection(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	current_mc = mc;
	chain_next = 1;
	CHECK_INT(matrix_whoami(mc, on_chain, &chain[0]), 0);
	CHECK(run_for(N_SEQUENTIAL, 10000));
	int port = chain[0].local_port;
	CHECK(port > 0);
	for (int i = 0; i < N_SEQUENTIAL; i++) {
		CHECK_INT(chain[i].status, 200);
		CHECK_INT(chain[i].in_flight_seen, 0);
		if (chain[i].local_port != port)
			printf("# request %d used local port %d, the first used %d\n", i, chain[i].local_port, port);
		CHECK_INT(chain[i].local_port, port);
	}
	for (int i = 0; i < N_SEQUENTIAL; i++)
		result_clear(&chain[i]);
	current_mc = NULL;
	matrix_client_free(mc);
	CHECK_INT(connection_local_port(), 0); /* free closed it */
}

static int stray_calls;

static void on_stray(const struct matrix_response *resp, void *data)
{
	(void)resp;
	(void)data;
	stray_calls++;
}

static void test_free_with_requests_in_flight_calls_nothing(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	add_fault("{\"path\":\"^/_matrix/\",\"action\":\"hang\",\"seconds\":10,\"count\":4}");
	stray_calls = 0;
	for (int i = 0; i < 3; i++)
		CHECK_INT(matrix_whoami(mc, on_stray, NULL), 0);
	CHECK_INT(matrix_send(mc, "!alerts:localhost", "m.room.message", "never-seen", "{}", on_stray, NULL), 0);
	CHECK_INT(matrix_in_flight(mc), 4);
	run_idle(300); /* connections open, requests sent, server hangs */
	matrix_client_free(mc);
	CHECK_INT(connection_local_port(), 0);
	run_idle(300); /* no fd or timer of the freed client may fire */
	CHECK_INT(stray_calls, 0);
	clear_faults();
}

static int free_cb_calls;

static void on_free_in_callback(const struct matrix_response *resp, void *data)
{
	(void)resp;
	free_cb_calls++;
	matrix_client_free(data);
	loop_stop(loop);
}

static void test_free_from_a_callback_stops_the_rest(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	free_cb_calls = 0;
	for (int i = 0; i < 5; i++)
		CHECK_INT(matrix_whoami(mc, on_free_in_callback, mc), 0);
	run_idle(3000); /* the first callback stops the loop */
	run_idle(300);
	CHECK_INT(free_cb_calls, 1);
}

static void test_bad_arguments_are_refused_without_callback(void)
{
	struct config_matrix cfg = make_cfg("bridge-token", 5);
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	stray_calls = 0;
	CHECK_INT(matrix_request(mc, "GET", "no-slash", NULL, on_stray, NULL), -1);
	CHECK_INT(matrix_request(mc, "", "/_matrix/x", NULL, on_stray, NULL), -1);
	CHECK_INT(matrix_send(mc, "", "m.room.message", "t", "{}", on_stray, NULL), -1);
	CHECK_INT(matrix_in_flight(mc), 0);
	CHECK_INT(stray_calls, 0);
	matrix_client_free(mc);
}

/* ---- tokens from a matrix_auth (the session's side of it, faked) ---- */

struct fake_auth {
	const char *tokens[3];   /* tokens[generation - 1]; NULL: none */
	unsigned long generation; /* 0: no token yet */
	bool can_renew;
	bool renew_ok;           /* what ready() will say */
	int renews;
	unsigned long renewed_from;
	int cancels;
	matrix_auth_ready_fn ready;
	void *ready_data;
	char line[128];
};

static const char *fake_header(void *ctx, unsigned long *generation)
{
	struct fake_auth *fa = ctx;
	*generation = fa->generation;
	if (!fa->generation || !fa->tokens[fa->generation - 1])
		return NULL;
	snprintf(fa->line, sizeof fa->line, "Authorization: Bearer %s", fa->tokens[fa->generation - 1]);
	return fa->line;
}

/* The new token comes a loop turn later, as a real refresh's answer would. */
static void fake_renewed(struct loop *l, void *data)
{
	(void)l;
	struct fake_auth *fa = data;
	if (!fa->ready)
		return; /* cancelled */
	if (fa->renew_ok)
		fa->generation++;
	matrix_auth_ready_fn ready = fa->ready;
	fa->ready = NULL;
	ready(fa->ready_data, fa->renew_ok);
}

static bool fake_renew(void *ctx, unsigned long generation, bool soft_logout, matrix_auth_ready_fn ready,
		       void *data)
{
	(void)soft_logout;
	struct fake_auth *fa = ctx;
	if (!fa->can_renew)
		return false;
	fa->renews++;
	fa->renewed_from = generation;
	fa->ready = ready;
	fa->ready_data = data;
	loop_timer_add(loop, 10, fake_renewed, fa);
	return true;
}

static void fake_cancel(void *ctx, void *data)
{
	struct fake_auth *fa = ctx;
	if (fa->ready && fa->ready_data == data) {
		fa->ready = NULL;
		fa->cancels++;
	}
}

static struct matrix_auth fake_auth_ops(struct fake_auth *fa)
{
	return (struct matrix_auth){.header = fake_header, .renew = fake_renew, .cancel = fake_cancel, .ctx = fa};
}

static void test_auth_refused_token_is_renewed_and_the_request_resent(void)
{
	struct fake_auth fa = {.tokens = {"expired-token", "bridge-token"}, .generation = 1, .can_renew = true,
			       .renew_ok = true};
	struct matrix_auth auth = fake_auth_ops(&fa);
	struct config_matrix cfg = make_cfg(NULL, 5);
	cfg.auth = &auth;
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0};
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK(run_for(1, 5000));
	/* The caller sees only the answer to the resent request. */
	CHECK_INT(r.status, 200);
	CHECK_STR(r.user_id, "@zuul-bot:localhost");
	CHECK_INT(fa.renews, 1);
	CHECK_INT(fa.renewed_from, 1);
	/* The next request uses the new token at once. */
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(r.status, 200);
	CHECK_INT(fa.renews, 1);
	result_clear(&r);
	matrix_client_free(mc);
}

static void test_auth_request_without_a_token_waits_for_one(void)
{
	struct fake_auth fa = {.tokens = {"bridge-token"}, .can_renew = true, .renew_ok = true};
	struct matrix_auth auth = fake_auth_ops(&fa);
	struct config_matrix cfg = make_cfg(NULL, 5);
	cfg.auth = &auth;
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r1 = {0}, r2 = {0};
	current_mc = mc;
	CHECK_INT(matrix_whoami(mc, on_response, &r1), 0);
	CHECK_INT(matrix_whoami(mc, on_response, &r2), 0);
	/* Waiting requests count as in flight. */
	CHECK_INT(matrix_in_flight(mc), 2);
	CHECK(run_for(2, 5000));
	current_mc = NULL;
	CHECK_INT(r1.status, 200);
	CHECK_INT(r2.status, 200);
	CHECK_INT(fa.renews, 1); /* one wait for both */
	CHECK_INT(fa.renewed_from, 0);
	result_clear(&r1);
	result_clear(&r2);
	matrix_client_free(mc);
}

static void test_auth_that_cannot_renew_leaves_the_401(void)
{
	struct fake_auth fa = {.tokens = {"not-a-token"}, .generation = 1, .can_renew = false};
	struct matrix_auth auth = fake_auth_ops(&fa);
	struct config_matrix cfg = make_cfg(NULL, 5);
	cfg.auth = &auth;
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0};
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(r.status, 401);
	CHECK_STR(r.errcode, "M_UNKNOWN_TOKEN");
	CHECK(r.had_json); /* the homeserver's own answer */
	result_clear(&r);
	/* No token and none to come: the request fails from the loop, as a refusal. */
	fa.generation = 0;
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK_INT(r.calls, 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(r.status, 401);
	CHECK_STR(r.errcode, "M_UNKNOWN_TOKEN");
	CHECK(!r.transient);
	result_clear(&r);
	matrix_client_free(mc);
}

static void test_auth_giving_up_fails_the_waiting_requests(void)
{
	struct fake_auth fa = {.tokens = {"expired-token"}, .generation = 1, .can_renew = true, .renew_ok = false};
	struct matrix_auth auth = fake_auth_ops(&fa);
	struct config_matrix cfg = make_cfg(NULL, 5);
	cfg.auth = &auth;
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0};
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	CHECK(run_for(1, 5000));
	CHECK_INT(fa.renews, 1);
	CHECK_INT(r.status, 401);
	CHECK_STR(r.errcode, "M_UNKNOWN_TOKEN");
	result_clear(&r);
	matrix_client_free(mc);
}

static void test_auth_free_while_waiting_cancels_the_wait(void)
{
	struct fake_auth fa = {.tokens = {"bridge-token"}, .can_renew = true, .renew_ok = true};
	struct matrix_auth auth = fake_auth_ops(&fa);
	struct config_matrix cfg = make_cfg(NULL, 5);
	cfg.auth = &auth;
	struct matrix_client *mc = matrix_client_new(loop, &cfg);
	struct result r = {0};
	CHECK_INT(matrix_whoami(mc, on_response, &r), 0);
	matrix_client_free(mc);
	CHECK_INT(fa.cancels, 1);
	run_idle(50);
	CHECK_INT(r.calls, 0);
}

int main(void)
{
	RUN(test_escape_segment_keeps_only_unreserved);
	RUN(test_transient_classification);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fake_hs_start() < 0) {
		printf("# could not start tests/fake_homeserver.py\n");
		fake_hs_stop();
		RUN_NAMED("fake homeserver starts", CHECK(false));
		return test_done();
	}
	loop = loop_new();
	RUN(test_bad_arguments_are_refused_without_callback);
	RUN(test_whoami_returns_user_id_and_sends_identity_headers);
	RUN(test_whoami_with_bad_token_is_permanent_401);
	RUN(test_join_by_alias_resolves_room_id);
	RUN(test_send_returns_event_id_and_same_txn_is_idempotent);
	RUN(test_server_error_500_is_transient);
	RUN(test_resource_limit_403_is_transient_and_names_the_admin);
	RUN(test_rate_limit_429_parses_retry_after_ms_from_body);
	RUN(test_retry_after_header_alone_is_used_and_non_object_body_has_no_json);
	RUN(test_dropped_connection_is_transport_failure);
	RUN(test_hang_longer_than_request_timeout_times_out);
	RUN(test_per_request_timeout_overrides_request_timeout_both_ways);
	RUN(test_oversized_body_is_refused);
	RUN(test_many_concurrent_requests_all_complete);
	RUN(test_sequential_requests_reuse_one_connection);
	RUN(test_free_with_requests_in_flight_calls_nothing);
	RUN(test_free_from_a_callback_stops_the_rest);
	RUN(test_auth_refused_token_is_renewed_and_the_request_resent);
	RUN(test_auth_request_without_a_token_waits_for_one);
	RUN(test_auth_that_cannot_renew_leaves_the_401);
	RUN(test_auth_giving_up_fails_the_waiting_requests);
	RUN(test_auth_free_while_waiting_cancels_the_wait);
	loop_free(loop);
	fake_hs_stop();
	curl_global_cleanup();
	return test_done();
}
