/* Tests of metrics: a real libmicrohttpd listener on 127.0.0.1, driven by our loop, scraped
 * over real TCP by a non-blocking client that runs in the same loop (one thread, like the bridge). */
#include "metrics.h"

#include "log.h"
#include "redact.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONTENT_TYPE_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

/* ---- a non-blocking HTTP/1.1 client driven by the loop ---- */

struct reply {
	int status;       /* 0: no complete answer */
	char *head;       /* status line and headers; caller frees (reply_free) */
	char *body;
	bool timed_out;
};

struct client {
	int fd;
	struct strbuf req;
	size_t sent;
	struct strbuf in;
	bool done;
};

static void on_client(struct loop *loop, int fd, int ready, void *data)
{
	struct client *c = data;
	if (ready & LOOP_WRITE) {
		ssize_t n = send(fd, c->req.data + c->sent, c->req.len - c->sent, MSG_NOSIGNAL);
		if (n > 0)
			c->sent += (size_t)n;
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			c->done = true;
		} else if (c->sent == c->req.len) {
			loop_watch(loop, fd, LOOP_READ, on_client, c);
		}
	}
	if (ready & LOOP_READ) {
		char buf[4096];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0)
			strbuf_append(&c->in, buf, (size_t)n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			c->done = true;
	}
	if (c->done) {
		loop_unwatch(loop, fd);
		loop_stop(loop);
	}
}

static void on_deadline(struct loop *loop, void *data)
{
	*(bool *)data = true;
	loop_stop(loop);
}

static int connect_nonblocking(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends one request (Connection: close) and runs the loop until the server closes
 * the connection or deadline_ms passes. The reply's strings are the caller's. */
static struct reply http_request(struct loop *loop, int port, const char *method, const char *path,
				 const char *body, int deadline_ms)
{
	struct reply r = {0};
	struct client c = {.fd = connect_nonblocking(port), .req = STRBUF_INIT, .in = STRBUF_INIT};
	if (c.fd < 0)
		return r;
	strbuf_printf(&c.req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", method, path);
	if (body)
		strbuf_printf(&c.req, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	else
		strbuf_puts(&c.req, "\r\n");
	loop_watch(loop, c.fd, LOOP_WRITE, on_client, &c);
	uint64_t t = loop_timer_add(loop, (uint64_t)deadline_ms, on_deadline, &r.timed_out);
	loop_run(loop);
	loop_timer_cancel(loop, t);
	loop_unwatch(loop, c.fd);
	close(c.fd);
	const char *in = strbuf_str(&c.in);
	const char *sep = strstr(in, "\r\n\r\n");
	if (sep && sscanf(in, "HTTP/1.%*d %d", &r.status) == 1) {
		r.head = xstrndup(in, (size_t)(sep - in) + 2);
		r.body = xstrdup(sep + 4);
	}
	strbuf_free(&c.req);
	strbuf_free(&c.in);
	return r;
}

static void reply_free(struct reply *r)
{
	free(r->head);
	free(r->body);
}

/* The value of header name in head (case-insensitive name), in a static buffer; NULL if absent. */
static const char *header(const struct reply *r, const char *name)
{
	static char value[256];
	size_t n = strlen(name);
	for (const char *p = r->head; p && (p = strstr(p, "\r\n")); ) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1;
			while (*v == ' ')
				v++;
			const char *end = strstr(v, "\r\n");
			snprintf(value, sizeof(value), "%.*s", (int)(end ? end - v : (long)strlen(v)), v);
			return value;
		}
	}
	return NULL;
}

/* Runs the loop for ms milliseconds (the server serves whatever is pending). */
static void run_for(struct loop *loop, int ms)
{
	bool fired = false;
	loop_timer_add(loop, (uint64_t)ms, on_deadline, &fired);
	loop_run(loop);
}

/* A blocking connection that sends prefix (maybe nothing) and then stays silent. */
static int idle_connection(int port, const char *prefix)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	if (prefix && send(fd, prefix, strlen(prefix), MSG_NOSIGNAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ---- fixture ---- */

struct fixture {
	struct loop *loop;
	struct stats stats;
	struct metrics_server *m;
	int port;
};

static bool fixture_start(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->loop = loop_new();
	f->stats.started_ms = 1763990000000;
	char err[256] = "";
	f->m = metrics_server_new(f->loop, "127.0.0.1", 0, &f->stats, err, sizeof(err));
	if (!f->m) {
		printf("# metrics_server_new failed: %s\n", err);
		test_current_failed = 1;
		loop_free(f->loop);
		return false;
	}
	f->port = metrics_server_port(f->m);
	return true;
}

static void fixture_stop(struct fixture *f)
{
	metrics_server_free(f->m);
	loop_free(f->loop);
	stats_clear(&f->stats);
}

/* ---- tests ---- */

static void test_listens_on_an_ephemeral_loopback_port(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	CHECK(f.port > 0 && f.port <= 65535);
	fixture_stop(&f);
}

static void test_metrics_serves_the_prometheus_text(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	f.stats.received = 5;
	stats_route(&f.stats, "alerts")->posted = 2;
	struct reply r = http_request(f.loop, f.port, "GET", "/metrics", NULL, 3000);
	CHECK(!r.timed_out);
	CHECK_INT(r.status, 200);
	CHECK_STR(header(&r, "Content-Type"), CONTENT_TYPE_PROMETHEUS);
	CHECK_STR(header(&r, "Cache-Control"), "no-store");
	struct strbuf want = STRBUF_INIT;
	stats_render_prometheus(&f.stats, &want);
	CHECK_STR(r.body, strbuf_str(&want));
	CHECK_CONTAINS(r.body, "\nzmb_route_reports_posted_total{route=\"alerts\"} 2\n");
	reply_free(&r);
	strbuf_free(&want);
	fixture_stop(&f);
}

static void test_a_stats_change_shows_in_the_next_scrape(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	struct reply r = http_request(f.loop, f.port, "GET", "/metrics", NULL, 3000);
	CHECK_CONTAINS(r.body, "\nzmb_reports_received_total 0\n");
	CHECK_CONTAINS(r.body, "\nzmb_mqtt_connected 0\n");
	reply_free(&r);
	f.stats.received = 42;
	f.stats.mqtt_connected = true;
	stats_observe_latency(&f.stats, 0.2);
	r = http_request(f.loop, f.port, "GET", "/metrics", NULL, 3000);
	CHECK_INT(r.status, 200);
	CHECK_CONTAINS(r.body, "\nzmb_reports_received_total 42\n");
	CHECK_CONTAINS(r.body, "\nzmb_mqtt_connected 1\n");
	CHECK_CONTAINS(r.body, "\nzmb_delivery_latency_seconds_bucket{le=\"0.25\"} 1\n");
	reply_free(&r);
	/* The bot kicked from a room: the gauge, the counter and /healthz say which. */
	struct room_stats *room = stats_room(&f.stats, "#alerts:example.org");
	room->removals = 1;
	r = http_request(f.loop, f.port, "GET", "/metrics", NULL, 3000);
	CHECK_CONTAINS(r.body, "\nzmb_room_joined{room=\"#alerts:example.org\"} 0\n");
	CHECK_CONTAINS(r.body, "\nzmb_room_removals_total{room=\"#alerts:example.org\"} 1\n");
	reply_free(&r);
	r = http_request(f.loop, f.port, "GET", "/healthz", NULL, 3000);
	CHECK_CONTAINS(r.body, "\"rooms_not_joined\":[\"#alerts:example.org\"]");
	reply_free(&r);
	fixture_stop(&f);
}

/* Whatever ends up in an answer (here a room name that happens to hold a secret) goes
 * out through the one door that blanks secrets. */
static void test_answers_never_carry_a_secret(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	redact_add("syt_metrics_secret_42");
	stats_room(&f.stats, "#alerts-syt_metrics_secret_42:example.org");
	struct reply r = http_request(f.loop, f.port, "GET", "/metrics", NULL, 3000);
	CHECK_INT(r.status, 200);
	CHECK_CONTAINS(r.body, "zmb_room_joined{room=\"#alerts-[redacted]:example.org\"} 0\n");
	CHECK_NOT_CONTAINS(r.body, "syt_metrics_secret_42");
	/* The length MHD sends is the redacted body's. */
	CHECK_INT(atoll(header(&r, "Content-Length")), (long long)strlen(r.body));
	reply_free(&r);
	r = http_request(f.loop, f.port, "GET", "/healthz", NULL, 3000);
	CHECK_CONTAINS(r.body, "\"rooms_not_joined\":[\"#alerts-[redacted]:example.org\"]");
	CHECK_NOT_CONTAINS(r.body, "syt_metrics_secret_42");
	reply_free(&r);
	redact_clear();
	fixture_stop(&f);
}

static void test_healthz_is_503_until_mqtt_and_matrix_are_up(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	f.stats.mqtt_connected = true;
	struct reply r = http_request(f.loop, f.port, "GET", "/healthz", NULL, 3000);
	CHECK_INT(r.status, 503);
	CHECK_STR(header(&r, "Content-Type"), "application/json");
	CHECK_STR(r.body, "{\"status\":\"degraded\",\"mqtt\":\"connected\",\"matrix\":\"unreachable\","
			  "\"outbox\":0,\"last_report\":null,\"rooms_not_joined\":[],\"rooms_encrypted\":[]}\n");
	reply_free(&r);

	f.stats.matrix_reachable = true;
	f.stats.outbox_depth = 3;
	r = http_request(f.loop, f.port, "GET", "/healthz", NULL, 3000);
	CHECK_INT(r.status, 200);
	CHECK_STR(header(&r, "Content-Type"), "application/json");
	CHECK_STR(r.body, "{\"status\":\"ok\",\"mqtt\":\"connected\",\"matrix\":\"reachable\","
			  "\"outbox\":3,\"last_report\":null,\"rooms_not_joined\":[],\"rooms_encrypted\":[]}\n");
	reply_free(&r);
	fixture_stop(&f);
}

static void test_head_answers_headers_without_body(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	struct reply r = http_request(f.loop, f.port, "HEAD", "/metrics", NULL, 3000);
	CHECK_INT(r.status, 200);
	CHECK_STR(header(&r, "Content-Type"), CONTENT_TYPE_PROMETHEUS);
	CHECK_STR(r.body, "");
	reply_free(&r);
	r = http_request(f.loop, f.port, "HEAD", "/healthz", NULL, 3000);
	CHECK_INT(r.status, 503);
	CHECK_STR(r.body, "");
	reply_free(&r);
	fixture_stop(&f);
}

static void test_other_paths_are_404(void)
{
	static const char *const paths[] = {"/", "/metrics/", "/metricsx", "/health", "/healthz/x",
					    "/../metrics", "/METRICS"};
	struct fixture f;
	if (!fixture_start(&f))
		return;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct reply r = http_request(f.loop, f.port, "GET", paths[i], NULL, 3000);
		if (r.status != 404)
			printf("# GET %s\n", paths[i]);
		CHECK_INT(r.status, 404);
		CHECK_NOT_CONTAINS(r.body, "zmb_");
		reply_free(&r);
	}
	/* A query string does not change the resource. */
	struct reply r = http_request(f.loop, f.port, "GET", "/metrics?debug=1", NULL, 3000);
	CHECK_INT(r.status, 200);
	reply_free(&r);
	fixture_stop(&f);
}

static void test_other_methods_are_405_with_allow(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	struct reply r = http_request(f.loop, f.port, "POST", "/metrics", "hello", 3000);
	CHECK_INT(r.status, 405);
	CHECK_STR(header(&r, "Allow"), "GET, HEAD");
	CHECK_NOT_CONTAINS(r.body, "zmb_");
	reply_free(&r);
	static const char *const methods[] = {"PUT", "DELETE", "OPTIONS", "PATCH"};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		r = http_request(f.loop, f.port, methods[i], "/healthz", NULL, 3000);
		if (r.status != 405)
			printf("# %s /healthz\n", methods[i]);
		CHECK_INT(r.status, 405);
		reply_free(&r);
	}
	/* An unknown path stays 404 whatever the method. */
	r = http_request(f.loop, f.port, "DELETE", "/nope", NULL, 3000);
	CHECK_INT(r.status, 404);
	reply_free(&r);
	fixture_stop(&f);
}

static void test_slow_and_idle_clients_do_not_block_a_scrape(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	int fds[12];
	for (int i = 0; i < 12; i++) {
		/* Half of them stop in the middle of the request line or the headers. */
		fds[i] = idle_connection(f.port, i % 2 ? "GET /metrics HTTP/1.1\r\nHo" : NULL);
		CHECK(fds[i] >= 0);
	}
	run_for(f.loop, 50);
	struct reply r = http_request(f.loop, f.port, "GET", "/metrics", NULL, 1000);
	CHECK(!r.timed_out);
	CHECK_INT(r.status, 200);
	CHECK_CONTAINS(r.body, "zmb_start_time_seconds 1763990000\n");
	reply_free(&r);
	for (int i = 0; i < 12; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	fixture_stop(&f);
}

/* Every slot held by a client that has sent part of its request: a fresh /healthz
 * (a health check) takes the place of the oldest of them and is answered at once, not
 * after they time out. Each probe costs one of them its connection, no more. */
static void test_healthz_is_answered_while_slow_clients_hold_every_slot(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	enum { N = 20 };
	int fds[N];
	for (int i = 0; i < N; i++) {
		fds[i] = idle_connection(f.port, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow");
		CHECK(fds[i] >= 0);
	}
	run_for(f.loop, 100);
	for (int probe = 0; probe < 3; probe++) {
		struct reply r = http_request(f.loop, f.port, "GET", "/healthz", NULL, 5000);
		CHECK(!r.timed_out);
		CHECK_INT(r.status, 503);
		CHECK_STR(header(&r, "Connection"), "close");
		reply_free(&r);
	}
	/* The 4 over the limit made room as they came, the first probe took a 16th's place,
	 * the next found the one the first left: 15 still connected. */
	int open = 0;
	for (int i = 0; i < N; i++) {
		char c;
		ssize_t n = recv(fds[i], &c, 1, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			open++;
		close(fds[i]);
	}
	CHECK_INT(open, 15);
	fixture_stop(&f);
}

/* More idle sockets than the connection limit: the loop must still sleep (no busy
 * poll on a listener MHD cannot accept from), and once they go, scrapes work again. */
static void test_a_connection_flood_neither_spins_nor_wedges_the_server(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	int fds[40];
	for (int i = 0; i < 40; i++)
		fds[i] = idle_connection(f.port, NULL);
	double before = cpu_seconds();
	run_for(f.loop, 400);
	double used = cpu_seconds() - before;
	if (used >= 0.2)
		printf("# the loop used %.3f s of CPU in 0.4 s with 40 idle connections\n", used);
	CHECK(used < 0.2);
	for (int i = 0; i < 40; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	run_for(f.loop, 100);
	struct reply r = http_request(f.loop, f.port, "GET", "/healthz", NULL, 2000);
	CHECK(!r.timed_out);
	CHECK_INT(r.status, 503);
	reply_free(&r);
	fixture_stop(&f);
}

struct eof_watch {
	int fd;
	bool closed;
};

static void on_eof(struct loop *loop, int fd, int ready, void *data)
{
	(void)ready;
	struct eof_watch *w = data;
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		w->closed = true;
		loop_unwatch(loop, fd);
		loop_stop(loop);
	}
}

/* Only the loop's timer (MHD_get_timeout) can expire a silent client: no fd event
 * ever comes for it. The connection timeout is 10 s, so this test waits that long. */
static void test_a_silent_client_is_disconnected_after_the_timeout(void)
{
	struct fixture f;
	if (!fixture_start(&f))
		return;
	struct eof_watch w = {.fd = idle_connection(f.port, "GET /metrics HTTP/1.1\r\n")};
	CHECK(w.fd >= 0);
	if (w.fd < 0) {
		fixture_stop(&f);
		return;
	}
	loop_watch(f.loop, w.fd, LOOP_READ, on_eof, &w);
	bool late = false;
	uint64_t start = loop_now_ms(f.loop);
	uint64_t t = loop_timer_add(f.loop, 13000, on_deadline, &late);
	loop_run(f.loop);
	loop_timer_cancel(f.loop, t);
	uint64_t waited = loop_now_ms(f.loop) - start;
	CHECK(w.closed);
	CHECK(!late);
	if (waited < 9000 || waited > 12500)
		printf("# the server closed the silent connection after %llu ms (expected about 10 s)\n",
		       (unsigned long long)waited);
	CHECK(waited >= 9000 && waited <= 12500);
	loop_unwatch(f.loop, w.fd);
	close(w.fd);
	fixture_stop(&f);
}

static void test_bad_address_and_busy_port_are_reported(void)
{
	struct loop *loop = loop_new();
	struct stats s = {0};
	char err[256] = "";
	CHECK(metrics_server_new(loop, "localhost", 9100, &s, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "bad listen address \"localhost\"");
	CHECK(metrics_server_new(loop, "127.0.0.1", 70000, &s, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "70000");

	struct metrics_server *first = metrics_server_new(loop, "127.0.0.1", 0, &s, err, sizeof(err));
	CHECK(first != NULL);
	if (first) {
		err[0] = '\0';
		FILE *devnull = fopen("/dev/null", "w");
		log_set_stream(devnull); /* MHD's own complaint is logged too */
		struct metrics_server *second =
			metrics_server_new(loop, "127.0.0.1", metrics_server_port(first), &s, err, sizeof(err));
		log_set_stream(stderr);
		fclose(devnull);
		CHECK(second == NULL);
		metrics_server_free(second);
		CHECK_CONTAINS(err, "cannot listen on 127.0.0.1 port");
		printf("# busy port: %s\n", err);
	}
	metrics_server_free(first);
	metrics_server_free(NULL);
	loop_free(loop);
}

static void test_listens_on_ipv6_loopback(void)
{
	struct loop *loop = loop_new();
	struct stats s = {0};
	char err[256] = "";
	struct metrics_server *m = metrics_server_new(loop, "::1", 0, &s, err, sizeof(err));
	if (!m) {
		printf("# skipped: no IPv6 loopback here (%s)\n", err);
		loop_free(loop);
		return;
	}
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)metrics_server_port(m))};
	sa.sin6_addr = in6addr_loopback;
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	CHECK(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
	run_for(loop, 100);
	char buf[512] = "";
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	CHECK(n > 0);
	CHECK(strncmp(buf, "HTTP/1.1 503", 12) == 0);
	close(fd);
	metrics_server_free(m);
	loop_free(loop);
}

int main(void)
{
	RUN(test_listens_on_an_ephemeral_loopback_port);
	RUN(test_metrics_serves_the_prometheus_text);
	RUN(test_a_stats_change_shows_in_the_next_scrape);
	RUN(test_answers_never_carry_a_secret);
	RUN(test_healthz_is_503_until_mqtt_and_matrix_are_up);
	RUN(test_head_answers_headers_without_body);
	RUN(test_other_paths_are_404);
	RUN(test_other_methods_are_405_with_allow);
	RUN(test_slow_and_idle_clients_do_not_block_a_scrape);
	RUN(test_a_connection_flood_neither_spins_nor_wedges_the_server);
	RUN(test_healthz_is_answered_while_slow_clients_hold_every_slot);
	RUN(test_bad_address_and_busy_port_are_reported);
	RUN(test_listens_on_ipv6_loopback);
	RUN(test_a_silent_client_is_disconnected_after_the_timeout);
	return test_done();
}
