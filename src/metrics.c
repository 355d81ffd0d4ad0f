/* metrics: /metrics and /healthz over libmicrohttpd, run by our poll loop through MHD's
 * epoll fd and MHD_get_timeout(), so the HTTP side needs no thread and no lock. */
#include "metrics.h"

#include "log.h"
#include "redact.h"
#include "strbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A scraper needs one connection; a handful more covers curl by hand and a container's
 * health check. Beyond this a newcomer takes the place of the oldest connection still
 * sending its request (make_room), so a flood of idle sockets costs the bridge at most
 * this many fds plus one. */
#define METRICS_MAX_CONNECTIONS 16
/* Seconds a connection may sit idle before MHD closes it. MHD counts from the last byte,
 * so a client that trickles one byte every few seconds is never idle: the deadline below
 * is what bounds it. */
#define METRICS_CONNECTION_TIMEOUT 10
/* Milliseconds a connection lives from accept, whatever it sends: the request is one
 * line and a few headers, the answer a few KiB, and every answer closes its connection
 * (Connection: close), so this bounds a request from its first byte to its last. */
#define METRICS_CONNECTION_DEADLINE_MS 10000
/* Requests here are one line and a few headers; the default 32 KiB per connection
 * times the limit would be memory held for nothing. */
#define METRICS_CONNECTION_MEMORY (16 * 1024)

#define CONTENT_TYPE_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_JSON "application/json"

/* One accepted connection, from MHD's "started" notice to its "closed" one. */
struct metrics_conn {
	struct MHD_Connection *conn; /* NULL: the slot is free */
	int fd;                      /* MHD's socket; we only ever shutdown(2) it, MHD closes it */
	uint64_t accepted_ms;        /* loop time */
	bool requested;              /* its request's headers are complete: it is being answered */
	bool shut;                   /* shut down by us; MHD closes it on its next run */
};

struct metrics_server {
	struct loop *loop;
	struct MHD_Daemon *mhd;
	const struct stats *stats;
	int epoll_fd;     /* MHD's, watched by our loop for readability */
	int port;         /* actually bound */
	uint64_t timer;   /* pending MHD_get_timeout() deadline, 0: none */
	char *start_err;  /* while starting: MHD's last complaint, for metrics_server_new's err */
	/* MHD accepts one more than METRICS_MAX_CONNECTIONS: the newcomer that makes room. */
	struct metrics_conn conns[METRICS_MAX_CONNECTIONS + 1];
};

/* MHD's messages go to our log; while the daemon starts, the last one is kept too,
 * because MHD_start_daemon reports why it failed only this way. */
__attribute__((format(printf, 2, 0)))
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct metrics_server *m = cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	if (!m->mhd) {
		free(m->start_err);
		m->start_err = xstrdup(msg);
	}
	log_kv(ZLOG_WARN, "metrics: libmicrohttpd", "detail", msg, NULL);
}

/* Queues a response whose body is taken over (freed by MHD); false when MHD refused. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *content_type,
			       struct strbuf *body)
{
	/* Nothing served here should hold a secret; should a room name or route ever quote
	 * one, this is the one door every answer goes out by. */
	struct strbuf clean = STRBUF_INIT;
	if (redact_text(body->data, body->len, &clean) != body->data) {
		strbuf_free(body);
		*body = clean;
	}
	size_t len = body->len;
	char *data = strbuf_detach(body);
	struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(data);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	/* Each scrape must see the state of now, never a proxy's copy. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	/* One request per connection: the connection deadline then bounds one request, and
	 * never cuts a kept-alive client's next one short. A scrape every 15 s gains nothing
	 * from keep-alive (the idle timeout would close it between scrapes anyway). */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* ---- connections: a deadline from accept, and room for a newcomer ----
 *
 * libmicrohttpd 0.9.75 offers an idle timeout (reset by every byte received), a global
 * and a per-IP connection limit, and nothing that closes a connection which keeps
 * trickling. Sixteen clients sending one byte every 4 s would hold every slot for as long
 * as they like, and /healthz (a container's health check, a load balancer's probe) would
 * wait behind them. A per-IP limit does not help: the probe and the abuser often share an
 * address (loopback, a node's NAT). So the server tracks its connections itself
 * (MHD_OPTION_NOTIFY_CONNECTION) and
 *  - closes any connection METRICS_CONNECTION_DEADLINE_MS after accept, whatever it sent;
 *  - when a newcomer fills the last slot, closes the oldest connection whose request is
 *    still incomplete, so a probe is answered at once, not after the deadline.
 * "Closes" is shutdown(2) on MHD's socket: MHD sees the end of the stream on its next run
 * and closes the connection itself, so its bookkeeping stays its own. */

static struct metrics_conn *find_conn(struct metrics_server *m, const struct MHD_Connection *conn)
{
	for (size_t i = 0; i < sizeof m->conns / sizeof m->conns[0]; i++)
		if (m->conns[i].conn == conn)
			return &m->conns[i];
	return NULL;
}

static void shut_conn(struct metrics_conn *c, const char *why)
{
	c->shut = true;
	shutdown(c->fd, SHUT_RDWR);
	log_kv(ZLOG_DEBUG, "metrics: connection closed", "reason", why, NULL);
}

/* The oldest connection still sending its request gives its place to a newcomer. */
static void make_room(struct metrics_server *m)
{
	struct metrics_conn *oldest = NULL;
	unsigned live = 0;
	for (size_t i = 0; i < sizeof m->conns / sizeof m->conns[0]; i++) {
		struct metrics_conn *c = &m->conns[i];
		if (!c->conn || c->shut)
			continue;
		live++;
		if (!c->requested && (!oldest || c->accepted_ms < oldest->accepted_ms))
			oldest = c;
	}
	if (live > METRICS_MAX_CONNECTIONS && oldest)
		shut_conn(oldest, "the oldest unfinished request, to make room for a new connection");
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)socket_context;
	struct metrics_server *m = cls;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct metrics_conn *c = find_conn(m, conn);
		if (c)
			*c = (struct metrics_conn){.fd = -1};
		return;
	}
	struct metrics_conn *c = find_conn(m, NULL);
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!c || !info)
		return; /* cannot happen: MHD accepts at most as many as there are slots */
	*c = (struct metrics_conn){.conn = conn, .fd = info->connect_fd, .accepted_ms = loop_now_ms(m->loop)};
	make_room(m);
}

/* Shuts down every connection past its deadline; returns the loop time of the next
 * deadline, UINT64_MAX when there is none. */
static uint64_t enforce_deadlines(struct metrics_server *m)
{
	uint64_t now = loop_now_ms(m->loop), next = UINT64_MAX;
	for (size_t i = 0; i < sizeof m->conns / sizeof m->conns[0]; i++) {
		struct metrics_conn *c = &m->conns[i];
		if (!c->conn || c->shut)
			continue;
		uint64_t due = c->accepted_ms + METRICS_CONNECTION_DEADLINE_MS;
		if (due <= now)
			shut_conn(c, "connection deadline passed (a client too slow to send its request or read the answer)");
		else if (due < next)
			next = due;
	}
	return next;
}

/* Every request is answered on its first call (headers complete): nothing we serve
 * reads a body, so an unexpected upload is refused before it is read. Unknown paths
 * are 404 whatever the method; known ones answer only GET and HEAD (HEAD: MHD sends
 * the headers of the GET and no body). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	struct metrics_server *m = cls;
	struct metrics_conn *c = find_conn(m, conn);
	if (c)
		c->requested = true;
	struct strbuf body = STRBUF_INIT;
	bool is_metrics = strcmp(url, "/metrics") == 0;
	bool is_health = strcmp(url, "/healthz") == 0;
	if (!is_metrics && !is_health) {
		strbuf_puts(&body, "not found: try /metrics or /healthz\n");
		return respond(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", &body);
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		strbuf_puts(&body, "method not allowed: use GET or HEAD\n");
		return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", &body);
	}
	if (is_metrics) {
		stats_render_prometheus(m->stats, &body);
		return respond(conn, MHD_HTTP_OK, CONTENT_TYPE_PROMETHEUS, &body);
	}
	stats_render_health(m->stats, &body);
	return respond(conn, (unsigned)stats_health_status(m->stats), CONTENT_TYPE_JSON, &body);
}

static void on_timer(struct loop *loop, void *data);

/* MHD asks to be run again within its timeout (idle connections to expire, data
 * it already read to process), and the next connection deadline comes; one loop timer
 * at a time carries the earlier of the two. */
static void schedule(struct metrics_server *m)
{
	loop_timer_cancel(m->loop, m->timer);
	m->timer = 0;
	uint64_t delay = UINT64_MAX;
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(m->mhd, &ms) == MHD_YES)
		delay = (uint64_t)ms;
	uint64_t next = enforce_deadlines(m), now = loop_now_ms(m->loop);
	if (next != UINT64_MAX && next - now < delay)
		delay = next - now;
	if (delay != UINT64_MAX)
		m->timer = loop_timer_add(m->loop, delay, on_timer, m);
}

static unsigned connection_count(struct metrics_server *m)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return info ? info->num_connections : 0;
}

/* libmicrohttpd 0.9.75 takes its listen socket out of the epoll set at the connection
 * limit and puts it back only at the start of a later MHD_run(), while closed connections
 * are counted down at the end of one. With no thread of its own nothing would call that
 * later run: the server would stop accepting for good after one flood. So a run that
 * closed connections is followed by another, which re-arms the listener. */
static void run_mhd(struct metrics_server *m)
{
	unsigned before = connection_count(m);
	if (MHD_run(m->mhd) != MHD_YES)
		log_kv(ZLOG_WARN, "metrics: MHD_run failed; will retry on the next event", NULL);
	else if (connection_count(m) < before)
		MHD_run(m->mhd);
	schedule(m);
}

static void on_timer(struct loop *loop, void *data)
{
	(void)loop;
	struct metrics_server *m = data;
	m->timer = 0;
	run_mhd(m);
}

static void on_epoll_ready(struct loop *loop, int fd, int ready, void *data)
{
	(void)loop;
	(void)fd;
	(void)ready;
	run_mhd(data);
}

struct metrics_server *metrics_server_new(struct loop *loop, const char *address, int port,
					  const struct stats *stats, char *err, size_t errlen)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} addr;
	memset(&addr, 0, sizeof(addr));
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	if (port < 0 || port > 65535) {
		snprintf(err, errlen, "metrics: port %d is out of range (expected 0..65535)", port);
		return NULL;
	}
	if (inet_pton(AF_INET, address, &addr.v4.sin_addr) == 1) {
		addr.v4.sin_family = AF_INET;
		addr.v4.sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, address, &addr.v6.sin6_addr) == 1) {
		addr.v6.sin6_family = AF_INET6;
		addr.v6.sin6_port = htons((uint16_t)port);
		flags |= MHD_USE_IPv6;
	} else {
		snprintf(err, errlen, "metrics: bad listen address \"%s\" (expected a numeric IPv4 or "
				      "IPv6 address such as 127.0.0.1 or ::1)", address);
		return NULL;
	}

	struct metrics_server *m = xcalloc(1, sizeof(*m));
	m->loop = loop;
	m->stats = stats;
	m->epoll_fd = -1;
	errno = 0;
	/* The logger goes first, or MHD prints what comes before it to stderr itself. */
	m->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, m,
				  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, m,
				  MHD_OPTION_SOCK_ADDR, &addr.sa,
				  MHD_OPTION_NOTIFY_CONNECTION, on_connection, m,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNECTIONS + 1,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_CONNECTION_TIMEOUT,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_CONNECTION_MEMORY,
				  MHD_OPTION_END);
	if (!m->mhd) {
		int e = errno;
		snprintf(err, errlen, "metrics: cannot listen on %s port %d: %s", address, port,
			 m->start_err ? m->start_err : e ? strerror(e) : "libmicrohttpd refused to start");
		free(m->start_err);
		free(m);
		return NULL;
	}
	free(m->start_err);
	m->start_err = NULL;

	const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	m->epoll_fd = info ? info->epoll_fd : -1;
	info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
	m->port = info ? (int)info->port : port;
	if (m->epoll_fd < 0 || loop_watch(loop, m->epoll_fd, LOOP_READ, on_epoll_ready, m) != 0) {
		snprintf(err, errlen, "metrics: cannot watch libmicrohttpd's epoll fd");
		MHD_stop_daemon(m->mhd);
		free(m);
		return NULL;
	}
	schedule(m);
	char num[16];
	snprintf(num, sizeof(num), "%d", m->port);
	log_kv(ZLOG_INFO, "metrics: listening", "address", address, "port", num, NULL);
	return m;
}

void metrics_server_free(struct metrics_server *m)
{
	if (!m)
		return;
	loop_timer_cancel(m->loop, m->timer);
	loop_unwatch(m->loop, m->epoll_fd);
	/* Closes the open connections and the epoll fd. */
	MHD_stop_daemon(m->mhd);
	free(m);
}

int metrics_server_port(const struct metrics_server *m)
{
	return m->port;
}
