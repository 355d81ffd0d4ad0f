/* Tests of notify: the exact datagrams systemd would receive on a socket of our own (path
 * and abstract name), silence without NOTIFY_SOCKET, and the WATCHDOG_USEC/PID rules. */
#include "notify.h"

#include "strbuf.h"
#include "test.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The listening end, standing in for systemd. */
struct listener {
	int fd;
	char dir[64];
	char path[96]; /* fits sun_path (108) */
};

static bool listen_path(struct listener *l)
{
	snprintf(l->dir, sizeof l->dir, "/tmp/zmb-test-notify-XXXXXX");
	if (!mkdtemp(l->dir)) {
		perror("mkdtemp");
		return false;
	}
	snprintf(l->path, sizeof l->path, "%s/notify", l->dir);
	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", l->path);
	if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		perror("bind");
		return false;
	}
	setenv("NOTIFY_SOCKET", l->path, 1);
	return true;
}

/* Binds the abstract name "\0zmb-test-notify-PID" and sets NOTIFY_SOCKET="@zmb-test-notify-PID". */
static bool listen_abstract(struct listener *l)
{
	l->dir[0] = '\0';
	snprintf(l->path, sizeof l->path, "@zmb-test-notify-%ld", (long)getpid());
	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(l->path);
	memcpy(sa.sun_path, l->path, len);
	sa.sun_path[0] = '\0';
	if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) != 0) {
		perror("bind abstract");
		return false;
	}
	setenv("NOTIFY_SOCKET", l->path, 1);
	return true;
}

static void listener_close(struct listener *l)
{
	unsetenv("NOTIFY_SOCKET");
	close(l->fd);
	if (l->dir[0]) {
		unlink(l->path);
		rmdir(l->dir);
	}
}

/* The next datagram, or NULL when none is waiting (sendto on a Unix datagram socket
 * has queued it by the time it returns, so no waiting is needed). Caller frees. */
static char *next_datagram(struct listener *l)
{
	char buf[8192];
	ssize_t n = recv(l->fd, buf, sizeof buf - 1, MSG_DONTWAIT);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return xstrdup(buf);
}

/* Checks that the next datagram is exactly want (NULL: that none is waiting). */
#define CHECK_DATAGRAM(l, want)                                                                      \
	do {                                                                                         \
		char *got_ = next_datagram(l);                                                       \
		CHECK_STR(got_, want);                                                               \
		free(got_);                                                                          \
	} while (0)

static void test_each_call_sends_its_exact_message(void)
{
	struct listener l;
	if (!listen_path(&l)) {
		CHECK(!"a listening socket");
		return;
	}
	notify_ready();
	notify_watchdog();
	notify_stopping();
	notify_status("mqtt=%s outbox=%d", "connected", 3);
	CHECK_DATAGRAM(&l, "READY=1");
	CHECK_DATAGRAM(&l, "WATCHDOG=1");
	CHECK_DATAGRAM(&l, "STOPPING=1");
	CHECK_DATAGRAM(&l, "STATUS=mqtt=connected outbox=3");
	CHECK_DATAGRAM(&l, NULL);
	listener_close(&l);
}

static uint64_t monotonic_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void test_reloading_carries_the_monotonic_time(void)
{
	struct listener l;
	if (!listen_path(&l)) {
		CHECK(!"a listening socket");
		return;
	}
	uint64_t before = monotonic_usec();
	notify_reloading();
	uint64_t after = monotonic_usec();
	char *got = next_datagram(&l);
	CHECK(got != NULL);
	if (got) {
		unsigned long long usec = 0;
		int end = 0;
		int n = sscanf(got, "RELOADING=1\nMONOTONIC_USEC=%llu%n", &usec, &end);
		if (n != 1 || got[end] != '\0') {
			test_current_failed = 1;
			printf("# expected \"RELOADING=1\\nMONOTONIC_USEC=<usec>\", got \"%s\"\n", got);
		}
		CHECK(usec >= before && usec <= after);
	}
	free(got);
	listener_close(&l);
}

static void test_status_newlines_cannot_start_another_assignment(void)
{
	struct listener l;
	if (!listen_path(&l)) {
		CHECK(!"a listening socket");
		return;
	}
	notify_status("line one\nREADY=1\r\nend");
	CHECK_DATAGRAM(&l, "STATUS=line one READY=1  end");
	listener_close(&l);
}

static void test_long_status_is_one_whole_datagram(void)
{
	struct listener l;
	if (!listen_path(&l)) {
		CHECK(!"a listening socket");
		return;
	}
	char text[3001];
	memset(text, 'x', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	notify_status("%s", text);
	char *got = next_datagram(&l);
	CHECK_INT(got ? strlen(got) : 0, strlen("STATUS=") + 3000);
	CHECK(got && strncmp(got, "STATUS=xxx", 10) == 0);
	free(got);
	CHECK_DATAGRAM(&l, NULL);
	listener_close(&l);
}

static void test_abstract_socket_name_is_used(void)
{
	struct listener l;
	if (!listen_abstract(&l)) {
		CHECK(!"a listening abstract socket");
		return;
	}
	notify_ready();
	notify_status("abstract");
	CHECK_DATAGRAM(&l, "READY=1");
	CHECK_DATAGRAM(&l, "STATUS=abstract");
	listener_close(&l);
}

/* Without NOTIFY_SOCKET (or with a useless one) every call returns quietly; the
 * listener, still bound, proves nothing was sent anywhere we could see. */
static void test_calls_are_no_ops_without_a_usable_socket(void)
{
	struct listener l;
	if (!listen_path(&l)) {
		CHECK(!"a listening socket");
		return;
	}
	char relative[sizeof l.path];
	snprintf(relative, sizeof relative, "%s", l.path + 1); /* "tmp/...": not absolute */
	char missing[sizeof l.path + 16];
	snprintf(missing, sizeof missing, "%s/nobody-here", l.dir);
	const char *values[] = {NULL, "", relative, missing, "@", "/"};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		if (values[i])
			setenv("NOTIFY_SOCKET", values[i], 1);
		else
			unsetenv("NOTIFY_SOCKET");
		notify_ready();
		notify_reloading();
		notify_stopping();
		notify_watchdog();
		notify_status("%d", 1);
		char *got = next_datagram(&l);
		if (got) {
			test_current_failed = 1;
			printf("# NOTIFY_SOCKET=%s: expected no datagram, got \"%s\"\n", values[i] ? values[i] : "(unset)",
			       got);
		}
		free(got);
	}
	listener_close(&l);
}

/* A socket file whose listener is gone (systemd restarted): ECONNREFUSED, not a crash. */
static void test_vanished_listener_is_not_fatal(void)
{
	struct listener l;
	if (!listen_path(&l)) {
		CHECK(!"a listening socket");
		return;
	}
	close(l.fd);
	l.fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	notify_ready();
	notify_status("still alive");
	CHECK(access(l.path, F_OK) == 0);
	listener_close(&l);
}

static void set_watchdog(const char *usec, const char *pid)
{
	if (usec)
		setenv("WATCHDOG_USEC", usec, 1);
	else
		unsetenv("WATCHDOG_USEC");
	if (pid)
		setenv("WATCHDOG_PID", pid, 1);
	else
		unsetenv("WATCHDOG_PID");
}

static void test_watchdog_interval_is_half_the_timeout_for_us(void)
{
	char self[32], other[32];
	snprintf(self, sizeof self, "%ld", (long)getpid());
	snprintf(other, sizeof other, "%ld", (long)getpid() + 1);
	struct {
		const char *usec, *pid;
		uint64_t want_ms;
	} cases[] = {
		{NULL, NULL, 0},             /* not watched */
		{"10000000", NULL, 5000},    /* WatchdogSec=10, no PID: ours */
		{"10000000", self, 5000},    /* our PID */
		{"10000000", other, 0},      /* inherited from the watched parent */
		{"10000000", "", 0},         /* PID present but not a number */
		{"10000000", "12x", 0},
		{"30000000", self, 15000},
		{"0", NULL, 0},              /* zero disables */
		{"", NULL, 0},
		{"abc", NULL, 0},
		{"-5", NULL, 0},
		{"12abc", NULL, 0},
		{"99999999999999999999999", NULL, 0}, /* overflow */
		{"1000", NULL, 1},           /* 1 ms timeout: still watched, so at least 1 ms */
		{"3000", NULL, 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		set_watchdog(cases[i].usec, cases[i].pid);
		uint64_t got = notify_watchdog_interval_ms();
		if (got != cases[i].want_ms) {
			test_current_failed = 1;
			printf("# WATCHDOG_USEC=%s WATCHDOG_PID=%s: expected %llu ms, got %llu\n",
			       cases[i].usec ? cases[i].usec : "(unset)", cases[i].pid ? cases[i].pid : "(unset)",
			       (unsigned long long)cases[i].want_ms, (unsigned long long)got);
		}
	}
	set_watchdog(NULL, NULL);
}

int main(void)
{
	unsetenv("NOTIFY_SOCKET");
	RUN(test_each_call_sends_its_exact_message);
	RUN(test_reloading_carries_the_monotonic_time);
	RUN(test_status_newlines_cannot_start_another_assignment);
	RUN(test_long_status_is_one_whole_datagram);
	RUN(test_abstract_socket_name_is_used);
	RUN(test_calls_are_no_ops_without_a_usable_socket);
	RUN(test_vanished_listener_is_not_fatal);
	RUN(test_watchdog_interval_is_half_the_timeout_for_us);
	return test_done();
}
