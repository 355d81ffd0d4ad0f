/* http_sink: the benchmark's Matrix homeserver stand-in. Answers whoami, join and send
 * over HTTP/1.1 keep-alive (epoll, one thread) and records each send's arrival time. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Requests larger than this are refused: the bridge's sends are a few KiB. */
#define MAX_REQUEST (4 * 1024 * 1024)
#define MAX_EVENTS 64

struct conn {
	int fd;
	char *in;
	size_t in_len, in_cap;
	char *out; /* response bytes the socket did not take yet */
	size_t out_len, out_off, out_cap;
	bool close_after; /* "Connection: close" seen: close once out is written */
};

struct sink {
	int epfd;
	int listen_fd;
	FILE *records;      /* "<monotonic ns> <txnId>\n" per PUT /send */
	uint64_t puts;      /* sends answered */
	uint64_t requests;  /* every request answered */
	uint64_t delay_us;  /* artificial service time per send (0: none) */
};

static volatile sig_atomic_t stop_requested;

static void on_stop(int signo)
{
	(void)signo;
	stop_requested = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q) {
		fprintf(stderr, "http_sink: out of memory\n");
		abort();
	}
	return q;
}

static void conn_close(struct sink *s, struct conn *c)
{
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* Writes what the socket takes; the rest waits for EPOLLOUT. Returns -1 when the
 * connection is dead. */
static int conn_flush(struct sink *s, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
			epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
			return 0;
		}
		return -1;
	}
	if (c->out_len) {
		c->out_len = c->out_off = 0;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	}
	return 0;
}

static void respond(struct conn *c, int status, const char *reason, const char *body)
{
	char head[256];
	size_t blen = strlen(body);
	int hlen = snprintf(head, sizeof head,
			    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n", status,
			    reason, blen, c->close_after ? "Connection: close\r\n" : "");
	size_t need = c->out_len + (size_t)hlen + blen;
	if (need > c->out_cap) {
		c->out_cap = need * 2;
		c->out = xrealloc(c->out, c->out_cap);
	}
	memcpy(c->out + c->out_len, head, (size_t)hlen);
	memcpy(c->out + c->out_len + (size_t)hlen, body, blen);
	c->out_len = need;
}

/* Percent-decodes src[0..n) into dst (size dstsz), NUL-terminated. */
static void percent_decode(const char *src, size_t n, char *dst, size_t dstsz)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < dstsz; i++) {
		if (src[i] == '%' && i + 2 < n) {
			char hex[3] = {src[i + 1], src[i + 2], 0};
			dst[o++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			dst[o++] = src[i];
		}
	}
	dst[o] = 0;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
	size_t p = strlen(prefix);
	return n >= p && memcmp(s, prefix, p) == 0;
}

/* One complete request: method and target point into the connection's buffer. */
static void handle(struct sink *s, struct conn *c, const char *method, size_t mlen, const char *target, size_t tlen)
{
	s->requests++;
	char body[512];
	if (mlen == 3 && memcmp(method, "PUT", 3) == 0 && starts_with(target, tlen, "/_matrix/client/v3/rooms/")) {
		/* .../rooms/{room}/send/{type}/{txnId}: the txnId is the last segment. */
		const char *slash = memrchr(target, '/', tlen);
		uint64_t now = mono_ns();
		if (s->delay_us) {
			struct timespec d = {.tv_sec = (time_t)(s->delay_us / 1000000),
					     .tv_nsec = (long)(s->delay_us % 1000000) * 1000};
			nanosleep(&d, NULL);
		}
		char txn[256];
		percent_decode(slash + 1, tlen - (size_t)(slash + 1 - target), txn, sizeof txn);
		fprintf(s->records, "%" PRIu64 " %s\n", now, txn);
		s->puts++;
		snprintf(body, sizeof body, "{\"event_id\":\"$%" PRIu64 "\"}", s->puts);
		respond(c, 200, "OK", body);
	} else if (mlen == 3 && memcmp(method, "GET", 3) == 0 &&
		   starts_with(target, tlen, "/_matrix/client/v3/account/whoami")) {
		respond(c, 200, "OK", "{\"user_id\":\"@bench:localhost\"}");
	} else if (mlen == 4 && memcmp(method, "POST", 4) == 0 && starts_with(target, tlen, "/_matrix/client/v3/join/")) {
		/* An alias #name:server is answered as the room id !name:server. */
		size_t plen = strlen("/_matrix/client/v3/join/");
		const char *q = memchr(target, '?', tlen);
		size_t end = q ? (size_t)(q - target) : tlen;
		char room[200];
		percent_decode(target + plen, end - plen, room, sizeof room);
		if (room[0] == '#')
			room[0] = '!';
		snprintf(body, sizeof body, "{\"room_id\":\"%s\"}", room);
		respond(c, 200, "OK", body);
	} else if (mlen == 3 && memcmp(method, "GET", 3) == 0 && starts_with(target, tlen, "/_bench/count")) {
		fflush(s->records);
		snprintf(body, sizeof body, "{\"puts\":%" PRIu64 ",\"requests\":%" PRIu64 "}", s->puts, s->requests);
		respond(c, 200, "OK", body);
	} else {
		respond(c, 404, "Not Found", "{\"errcode\":\"M_UNRECOGNIZED\",\"error\":\"Unrecognized request\"}");
	}
}

/* Case-insensitive header lookup inside [h, end); returns the value start or NULL. */
static const char *header_value(const char *h, const char *end, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);
	while (h < end) {
		const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
		if (!eol)
			eol = end;
		if ((size_t)(eol - h) > nlen && strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
			const char *v = h + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t)(eol - v);
			return v;
		}
		h = eol + 2;
	}
	return NULL;
}

/* Answers every complete request in the buffer (keep-alive, pipelining). Returns -1
 * on a malformed request. */
static int process_input(struct sink *s, struct conn *c)
{
	size_t off = 0;
	for (;;) {
		char *start = c->in + off;
		size_t avail = c->in_len - off;
		char *hend = memmem(start, avail, "\r\n\r\n", 4);
		if (!hend)
			break;
		char *eol = memmem(start, avail, "\r\n", 2);
		char *sp1 = memchr(start, ' ', (size_t)(eol - start));
		char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
		if (!sp1 || !sp2)
			return -1;
		size_t vlen = 0, clen = 0;
		const char *v = header_value(eol + 2, hend + 2, "Content-Length", &vlen);
		if (v)
			clen = strtoul(v, NULL, 10);
		size_t total = (size_t)(hend + 4 - start) + clen;
		if (total > MAX_REQUEST)
			return -1;
		if (avail < total)
			break;
		v = header_value(eol + 2, hend + 2, "Connection", &vlen);
		if (v && vlen == 5 && strncasecmp(v, "close", 5) == 0)
			c->close_after = true;
		handle(s, c, start, (size_t)(sp1 - start), sp1 + 1, (size_t)(sp2 - sp1 - 1));
		off += total;
		if (c->close_after)
			break;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return 0;
}

static void on_readable(struct sink *s, struct conn *c)
{
	for (;;) {
		if (c->in_cap - c->in_len < 16384) {
			c->in_cap = c->in_cap ? c->in_cap * 2 : 65536;
			c->in = xrealloc(c->in, c->in_cap);
		}
		size_t room = c->in_cap - c->in_len;
		ssize_t n = read(c->fd, c->in + c->in_len, room);
		if (n > 0) {
			c->in_len += (size_t)n;
			if ((size_t)n < room)
				break; /* short read: the socket is drained */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_close(s, c); /* EOF or error */
		return;
	}
	if (process_input(s, c) < 0 || conn_flush(s, c) < 0 || (c->close_after && c->out_len == 0)) {
		conn_close(s, c);
		return;
	}
}

static void on_accept(struct sink *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = calloc(1, sizeof *c);
		if (!c)
			abort();
		c->fd = fd;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: http_sink [--port N] [--port-file FILE] --out FILE [--delay-us N]\n"
			"  Records \"<CLOCK_MONOTONIC ns> <txnId>\" per PUT /send to FILE; SIGTERM flushes and exits.\n");
}

int main(int argc, char **argv)
{
	int port = 0;
	const char *port_file = NULL, *out = NULL;
	struct sink s = {0};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--port-file") && i + 1 < argc)
			port_file = argv[++i];
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--delay-us") && i + 1 < argc)
			s.delay_us = strtoull(argv[++i], NULL, 10);
		else {
			usage();
			return 2;
		}
	}
	if (!out) {
		usage();
		return 2;
	}
	s.records = fopen(out, "w");
	if (!s.records) {
		perror(out);
		return 1;
	}
	/* A large buffer: one write(2) per ~thousand records keeps the sink cheap. */
	setvbuf(s.records, NULL, _IOFBF, 1 << 20);

	s.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(s.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(s.listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s.listen_fd, 512) < 0) {
		perror("http_sink: bind/listen");
		return 1;
	}
	socklen_t alen = sizeof addr;
	getsockname(s.listen_fd, (struct sockaddr *)&addr, &alen);
	if (port_file) {
		/* Written to a temporary name and renamed, so a reader never sees half a number. */
		char tmp[4096];
		snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%d\n", ntohs(addr.sin_port)) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0) {
			perror(port_file);
			return 1;
		}
	}
	struct sigaction sa = {.sa_handler = on_stop};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	s.epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.listen_fd, &lev);
	struct epoll_event evs[MAX_EVENTS];
	while (!stop_requested) {
		int n = epoll_wait(s.epfd, evs, MAX_EVENTS, 1000);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				on_accept(&s);
				continue;
			}
			if (evs[i].events & EPOLLOUT) {
				if (conn_flush(&s, c) < 0 || (c->close_after && c->out_len == 0)) {
					conn_close(&s, c);
					continue;
				}
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(&s, c);
		}
	}
	if (fclose(s.records) != 0) {
		perror(out);
		return 1;
	}
	fprintf(stderr, "http_sink: %" PRIu64 " sends, %" PRIu64 " requests\n", s.puts, s.requests);
	return 0;
}
