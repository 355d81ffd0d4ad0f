/* notify: tells systemd how the daemon is doing (READY=1, STATUS=..., WATCHDOG=1) with one
 * datagram per message to $NOTIFY_SOCKET, as sd_notify(3) does, without linking libsystemd. */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"

/* Sends msg to $NOTIFY_SOCKET; 0 when sent or when nobody listens (no variable).
 * Failures are logged at debug level only: the watchdog ping runs every few seconds,
 * and systemd itself reports a daemon that never became ready or stopped pinging. */
static int notify_send(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	/* A path is sent with its NUL; an abstract name ('@' stands for the leading NUL) is
	 * exactly len bytes, since every byte of it is part of the name. */
	if ((path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof sa.sun_path) {
		log_kv(ZLOG_DEBUG, "NOTIFY_SOCKET is not a Unix socket path or abstract name; not notifying",
		       "notify_socket", path, NULL);
		return -1;
	}
	memcpy(sa.sun_path, path, len);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	else
		salen++;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_kv(ZLOG_DEBUG, "cannot create the notify socket", "error", strerror(errno), NULL);
		return -1;
	}
	ssize_t sent;
	do
		sent = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
	while (sent < 0 && errno == EINTR);
	int err = errno;
	close(fd);
	if (sent < 0) {
		log_kv(ZLOG_DEBUG, "cannot notify systemd", "notify_socket", path, "error", strerror(err), NULL);
		return -1;
	}
	return 0;
}

void notify_ready(void)
{
	notify_send("READY=1");
}

void notify_reloading(void)
{
	/* MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this reload to the
	 * signal it sent; older versions ignore the field. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char msg[64];
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	notify_send(msg);
}

void notify_stopping(void)
{
	notify_send("STOPPING=1");
}

void notify_status(const char *fmt, ...)
{
	if (!getenv("NOTIFY_SOCKET"))
		return; /* the common case outside systemd: no formatting at all */
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "STATUS=");
	va_list ap;
	va_start(ap, fmt);
	strbuf_vprintf(&sb, fmt, ap);
	va_end(ap);
	/* One message is newline-separated assignments: a newline in the text would end
	 * STATUS= early and start a bogus assignment. */
	for (size_t i = 0; i < sb.len; i++)
		if (sb.data[i] == '\n' || sb.data[i] == '\r')
			sb.data[i] = ' ';
	notify_send(strbuf_str(&sb));
	strbuf_free(&sb);
}

void notify_watchdog(void)
{
	notify_send("WATCHDOG=1");
}

/* Parses a whole decimal number; false for empty, signed, trailing junk or overflow. */
static bool parse_u64(const char *s, unsigned long long *out)
{
	if (!s || *s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

uint64_t notify_watchdog_interval_ms(void)
{
	unsigned long long usec, pid;
	if (!parse_u64(getenv("WATCHDOG_USEC"), &usec) || usec == 0)
		return 0;
	/* WATCHDOG_PID names the process systemd watches; a child that inherited the
	 * environment must not ping on the parent's behalf. */
	const char *pid_env = getenv("WATCHDOG_PID");
	if (pid_env && (!parse_u64(pid_env, &pid) || pid != (unsigned long long)getpid()))
		return 0;
	/* Half the timeout, as sd_watchdog_enabled(3) advises: one late turn is not fatal. */
	uint64_t ms = usec / 2000;
	return ms ? ms : 1;
}
