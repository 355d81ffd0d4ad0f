/* Tests of the MQTT session against a real mosquitto broker started per test on
 * a free loopback port: subscribe and receive, PUBACK held until flush,
 * reconnect, persistent sessions, authentication, MQTT 5 shared subscriptions.
 */
#include "mqtt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "strbuf.h"
#include "test.h"

extern char **environ;

static char tmpdir[] = "/tmp/zmb-test-mqtt-XXXXXX";

/* ---- processes: the broker and mosquitto_pub ---- */

struct broker {
	pid_t pid;
	int port;
	char conf[256];
	char log[256];
};

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		perror("free_port");
		abort();
	}
	close(fd);
	return ntohs(a.sin_port);
}

static bool port_accepts(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {
		.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Starts argv[0]; stdout goes to /dev/null, stderr to stderr_path (NULL:
 * inherited). */
static pid_t spawn(char *const argv[], const char *stdin_path, const char *stderr_path)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (stdin_path)
		posix_spawn_file_actions_addopen(&fa, 0, stdin_path, O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (stderr_path)
		posix_spawn_file_actions_addopen(&fa, 2, stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		printf("# cannot start %s: %s\n", argv[0], strerror(rc));
		return -1;
	}
	return pid;
}

static int run_wait(char *const argv[], const char *stdin_path)
{
	pid_t pid = spawn(argv, stdin_path, NULL);
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Starts mosquitto on port (0: a free one) with `extra` appended to its config.
 */
static bool broker_start(struct broker *b, int port, const char *extra)
{
	static int n;
	b->port = port ? port : free_port();
	snprintf(b->conf, sizeof b->conf, "%s/broker%d.conf", tmpdir, ++n);
	snprintf(b->log, sizeof b->log, "%s/broker%d.log", tmpdir, n);
	FILE *f = fopen(b->conf, "w");
	if (!f)
		return false;
	fprintf(f,
		"listener %d 127.0.0.1\npersistence false\nlog_type all\nlog_dest "
		"file %s\n",
		b->port, b->log);
	/* As root, mosquitto drops to user `mosquitto`, which cannot write our log. */
	if (geteuid() == 0)
		fprintf(f, "user root\n");
	fprintf(f, "%s\n", extra ? extra : "allow_anonymous true");
	fclose(f);
	char *argv[] = {"/usr/sbin/mosquitto", "-c", b->conf, NULL};
	char errlog[300];
	snprintf(errlog, sizeof errlog, "%s.stderr", b->log);
	b->pid = spawn(argv, NULL, errlog);
	for (int i = 0; i < 150 && b->pid > 0; i++) {
		if (port_accepts(b->port))
			return true;
		sleep_ms(20);
	}
	printf("# broker on port %d did not start\n", b->port);
	return false;
}

static void broker_stop(struct broker *b)
{
	if (b->pid > 0) {
		kill(b->pid, SIGTERM);
		waitpid(b->pid, NULL, 0);
		b->pid = -1;
	}
}

/* The broker's log so far; caller frees. */
static char *broker_log(const struct broker *b)
{
	struct strbuf sb = STRBUF_INIT;
	FILE *f = fopen(b->log, "r");
	char buf[4096];
	size_t n;
	while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
		strbuf_append(&sb, buf, n);
	if (f)
		fclose(f);
	return strbuf_detach(&sb);
}

/* The broker logs asynchronously: waits up to timeout_ms for needle to appear.
 */
static bool broker_logged(const struct broker *b, const char *needle, int timeout_ms)
{
	for (int waited = 0;; waited += 10) {
		char *log = broker_log(b);
		bool found = strstr(log, needle) != NULL;
		free(log);
		if (found || waited >= timeout_ms)
			return found;
		sleep_ms(10);
	}
}

static bool publish(int port, int qos, const char *topic, const char *msg, bool retain)
{
	char p[16], q[4];
	snprintf(p, sizeof p, "%d", port);
	snprintf(q, sizeof q, "%d", qos);
	char *argv[] = {
		"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-q", q, "-t", (char *)topic, "-m", (char *)msg,
		retain ? "-r" : NULL,     NULL};
	return run_wait(argv, NULL) == 0;
}

/* ---- the session under test, driven by a real loop ---- */

#define MAX_SEEN 64

struct tctx {
	struct loop *loop;
	struct mqtt_session *s;
	struct tctx *peer; /* a second session on the same loop, flushed by the same hook */
	bool flush_at_turn_end;
	int n_msgs;
	char topic[MAX_SEEN][64];
	char payload[MAX_SEEN][64];
	size_t len[MAX_SEEN];
	int qos[MAX_SEEN];
	bool retain[MAX_SEEN];
	int n_states;
	enum mqtt_state states[MAX_SEEN];
	char reason[MAX_SEEN][160];
	/* for run_until */
	bool (*cond)(struct tctx *);
	uint64_t deadline;
	int want;
};

static void on_message(const struct mqtt_message *m, void *data)
{
	struct tctx *t = data;
	if (t->n_msgs >= MAX_SEEN)
		return;
	snprintf(t->topic[t->n_msgs], sizeof t->topic[0], "%s", m->topic);
	snprintf(t->payload[t->n_msgs], sizeof t->payload[0], "%.*s", (int)m->len, (const char *)m->payload);
	t->len[t->n_msgs] = m->len;
	t->qos[t->n_msgs] = m->qos;
	t->retain[t->n_msgs] = m->retain;
	t->n_msgs++;
}

static void on_state(enum mqtt_state state, const char *reason, void *data)
{
	struct tctx *t = data;
	if (t->n_states >= MAX_SEEN)
		return;
	t->states[t->n_states] = state;
	snprintf(t->reason[t->n_states], sizeof t->reason[0], "%s", reason ? reason : "");
	t->n_states++;
}

/* The bridge's turn end, minus the store: flush unless the test holds the
 * commit. */
static void on_turn_end(struct loop *loop, void *data)
{
	(void)loop;
	struct tctx *t = data;
	if (t->flush_at_turn_end && t->s)
		mqtt_session_flush(t->s);
	if (t->flush_at_turn_end && t->peer && t->peer->s)
		mqtt_session_flush(t->peer->s);
}

static void on_tick(struct loop *loop, void *data)
{
	struct tctx *t = data;
	if ((t->cond && t->cond(t)) || loop_now_ms(loop) >= t->deadline) {
		loop_stop(loop);
		return;
	}
	loop_timer_add(loop, 5, on_tick, t);
}

/* Runs the loop until cond holds or timeout_ms passed; returns cond. */
static bool run_until(struct tctx *t, bool (*cond)(struct tctx *), uint64_t timeout_ms)
{
	t->cond = cond;
	t->deadline = loop_now_ms(t->loop) + timeout_ms;
	uint64_t id = loop_timer_add(t->loop, 0, on_tick, t);
	loop_run(t->loop);
	loop_timer_cancel(t->loop, id);
	return !cond || cond(t);
}

static bool is_connected(struct tctx *t) { return t->s && mqtt_session_state(t->s) == MQTT_CONNECTED; }
static bool is_disconnected(struct tctx *t) { return t->s && mqtt_session_state(t->s) == MQTT_DISCONNECTED; }
static bool has_wanted_msgs(struct tctx *t) { return t->n_msgs >= t->want; }

static int count_state(const struct tctx *t, enum mqtt_state st)
{
	int n = 0;
	for (int i = 0; i < t->n_states; i++)
		n += t->states[i] == st;
	return n;
}

static char *default_topics[] = {"zuul/#"};

static struct config_mqtt test_config(int port, const char *client_id)
{
	struct config_mqtt c = {0};
	c.host = "127.0.0.1";
	c.port = port;
	c.client_id = (char *)client_id;
	c.qos = 1;
	c.clean_session = false;
	c.keepalive = 60;
	c.protocol = 4;
	c.topics = default_topics;
	c.n_topics = 1;
	c.reconnect_min_s = 1;
	c.reconnect_max_s = 1;
	c.tls.verify = true;
	return c;
}

static void tctx_init(struct tctx *t)
{
	memset(t, 0, sizeof *t);
	t->loop = loop_new();
	t->flush_at_turn_end = true;
	loop_on_turn_end(t->loop, on_turn_end, t);
}

static void tctx_free(struct tctx *t)
{
	mqtt_session_free(t->s);
	t->s = NULL;
	loop_free(t->loop);
}

/* ---- tests ---- */

static void test_state_names_are_stable(void)
{
	CHECK_STR(mqtt_state_name(MQTT_DISCONNECTED), "disconnected");
	CHECK_STR(mqtt_state_name(MQTT_CONNECTING), "connecting");
	CHECK_STR(mqtt_state_name(MQTT_CONNECTED), "connected");
}

static void test_connects_subscribes_and_receives_qos0_and_qos1(void)
{
	struct broker b;
	if (!broker_start(&b, 0, NULL)) {
		CHECK(!"broker started");
		return;
	}
	CHECK(publish(b.port, 1, "zuul/retained", "kept", true));
	struct tctx t;
	tctx_init(&t);
	struct config_mqtt cfg = test_config(b.port, "zmb-basic");
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	CHECK(t.s != NULL);
	CHECK_INT(mqtt_session_state(t.s), MQTT_DISCONNECTED);
	CHECK_INT(mqtt_session_start(t.s), 0);
	CHECK(run_until(&t, is_connected, 5000));
	CHECK(t.n_states >= 2 && t.states[0] == MQTT_CONNECTING && t.states[t.n_states - 1] == MQTT_CONNECTED);
	t.want = 1;
	CHECK(run_until(&t, has_wanted_msgs, 3000));
	CHECK_STR(t.topic[0], "zuul/retained");
	CHECK_STR(t.payload[0], "kept");
	CHECK(t.retain[0]);

	CHECK(publish(b.port, 0, "zuul/zero", "payload zero", false));
	CHECK(publish(b.port, 1, "zuul/one", "payload one", false));
	CHECK(publish(b.port, 1, "other/topic", "not subscribed", false));
	t.want = 3;
	CHECK(run_until(&t, has_wanted_msgs, 3000));
	CHECK_INT(t.n_msgs, 3);
	CHECK_STR(t.topic[1], "zuul/zero");
	CHECK_STR(t.payload[1], "payload zero");
	CHECK_INT(t.qos[1], 0);
	CHECK(!t.retain[1]);
	CHECK_STR(t.topic[2], "zuul/one");
	CHECK_STR(t.payload[2], "payload one");
	CHECK_INT(t.qos[2], 1);
	/* the unsubscribed topic never arrives */
	run_until(&t, NULL, 200);
	CHECK_INT(t.n_msgs, 3);
	tctx_free(&t);
	CHECK(broker_logged(&b, "Received SUBSCRIBE from zmb-basic", 0));
	CHECK(broker_logged(&b, "Received DISCONNECT from zmb-basic", 2000));
	broker_stop(&b);
}

static void test_puback_is_written_only_after_flush(void)
{
	struct broker b;
	if (!broker_start(&b, 0, NULL)) {
		CHECK(!"broker started");
		return;
	}
	struct tctx t;
	tctx_init(&t);
	struct config_mqtt cfg = test_config(b.port, "zmb-invariant");
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	CHECK(run_until(&t, is_connected, 5000));

	/* The "commit" is held: nothing flushes at turn end from here on. */
	t.flush_at_turn_end = false;
	CHECK(publish(b.port, 1, "zuul/tenant", "report", false));
	t.want = 1;
	CHECK(run_until(&t, has_wanted_msgs, 3000));
	CHECK_INT(t.n_msgs, 1);
	CHECK_INT(t.qos[0], 1);
	/* Give a wrongly armed write callback every chance to send it. */
	run_until(&t, NULL, 300);
	char *log = broker_log(&b);
	CHECK_CONTAINS(log, "Sending PUBLISH to zmb-invariant");
	CHECK_NOT_CONTAINS(log, "Received PUBACK from zmb-invariant");
	free(log);

	/* The commit is done: the flush lets the PUBACK go. */
	mqtt_session_flush(t.s);
	CHECK(broker_logged(&b, "Received PUBACK from zmb-invariant", 2000));
	tctx_free(&t);
	broker_stop(&b);
}

/* Publishes n QoS 1 messages in one mosquitto_pub (-l: one message per stdin line). */
static bool publish_lines(int port, const char *topic, int n)
{
	char path[128], p[16];
	snprintf(path, sizeof path, "%s/lines", tmpdir);
	FILE *f = fopen(path, "w");
	if (!f)
		return false;
	for (int i = 0; i < n; i++)
		fprintf(f, "report %d\n", i);
	fclose(f);
	snprintf(p, sizeof p, "%d", port);
	char *argv[] = {"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-q", "1", "-t", (char *)topic, "-l", NULL};
	return run_wait(argv, path) == 0;
}

static int count_occurrences(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The in-flight window: with our acknowledgements held (the commit not done), the broker
 * sends at most the receive maximum we announced (MQTT 5), or its own limit (3.1.1:
 * mosquitto's max_inflight_messages, 20), then waits; the flush lets the rest come. */
static void window_case(int protocol, int receive_maximum, int published, int before_flush)
{
	struct broker b;
	if (!broker_start(&b, 0, NULL)) {
		CHECK(!"broker started");
		return;
	}
	struct tctx t;
	tctx_init(&t);
	struct config_mqtt cfg = test_config(b.port, "zmb-window");
	cfg.protocol = protocol;
	cfg.receive_maximum = receive_maximum;
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	CHECK(run_until(&t, is_connected, 5000));
	CHECK_INT(mqtt_session_window(t.s), protocol == 5 ? receive_maximum : 20);

	t.flush_at_turn_end = false;
	CHECK(publish_lines(b.port, "zuul/window", published));
	t.want = before_flush;
	CHECK(run_until(&t, has_wanted_msgs, 3000));
	run_until(&t, NULL, 300); /* every chance for the broker to send more than it may */
	CHECK_INT(t.n_msgs, before_flush);
	char *log = broker_log(&b);
	CHECK_INT(count_occurrences(log, "Sending PUBLISH to zmb-window"), before_flush);
	CHECK_NOT_CONTAINS(log, "Received PUBACK from zmb-window");
	free(log);

	mqtt_session_flush(t.s);
	t.flush_at_turn_end = true;
	t.want = published;
	CHECK(run_until(&t, has_wanted_msgs, 3000));
	CHECK_INT(t.n_msgs, published);
	CHECK_STR(t.payload[published - 1], published == 12 ? "report 11" : "?");
	tctx_free(&t);
	broker_stop(&b);
}

static void test_receive_maximum_is_the_brokers_window_under_mqtt5(void) { window_case(5, 5, 12, 5); }

static void test_mqtt311_window_is_the_brokers_own_limit(void) { window_case(4, 0, 12, 12); }

/* Publishes `size` bytes of 'x' at QoS 1 from a file (too large for argv). */
static bool publish_size(int port, const char *topic, size_t size)
{
	char path[128], p[16];
	snprintf(path, sizeof path, "%s/payload", tmpdir);
	FILE *f = fopen(path, "w");
	if (!f)
		return false;
	for (size_t i = 0; i < size; i++)
		fputc('x', f);
	fclose(f);
	snprintf(p, sizeof p, "%d", port);
	char *argv[] = {"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-q", "1", "-t", (char *)topic, "-f", path, NULL};
	return run_wait(argv, NULL) == 0;
}

/* A 200 KB report never reaches the session, a 50 KB one does, and the session stays
 * up; the broker's log shows it dropped the large ones (`dropped` three times). */
static void size_limit_case(int protocol, int maximum_packet_size, const char *broker_conf, const char *dropped)
{
	struct broker b;
	if (!broker_start(&b, 0, broker_conf)) {
		CHECK(!"broker started");
		return;
	}
	struct tctx t;
	tctx_init(&t);
	struct config_mqtt cfg = test_config(b.port, "zmb-maxpacket");
	cfg.protocol = protocol;
	/* mosquitto 2.0.11 keeps a QoS 1 report it dropped for the packet size in the
	 * session's in-flight window until the next reconnect (measured: with a window of 2
	 * the small one waited for it), so the window here is larger than the number of
	 * large publishes; docs/operations.md. */
	cfg.receive_maximum = protocol == 5 ? 10 : 0;
	cfg.maximum_packet_size = maximum_packet_size;
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	CHECK(run_until(&t, is_connected, 5000));

	for (int i = 0; i < 3; i++)
		CHECK(publish_size(b.port, "zuul/large", 200 * 1000));
	CHECK(publish_size(b.port, "zuul/small", 50 * 1000));
	t.want = 1;
	CHECK(run_until(&t, has_wanted_msgs, 3000));
	run_until(&t, NULL, 300); /* every chance for a large one to arrive late */
	CHECK_INT(t.n_msgs, 1);
	CHECK_STR(t.topic[0], "zuul/small");
	CHECK_INT((long long)t.len[0], 50 * 1000);
	char *log = broker_log(&b);
	CHECK_INT(count_occurrences(log, dropped), 3);
	free(log);
	CHECK(is_connected(&t));
	CHECK_INT(count_state(&t, MQTT_DISCONNECTED), 0);
	tctx_free(&t);
	broker_stop(&b);
}

/* The Maximum Packet Size announced in CONNECT (MQTT 5): the broker drops a larger
 * publish for this client instead of sending it, so libmosquitto never buffers it.
 * Without the property all four arrive. */
static void test_maximum_packet_size_keeps_large_publishes_away_under_mqtt5(void)
{
	size_limit_case(5, 100 * 1000, NULL, "Dropping too large outgoing PUBLISH for zmb-maxpacket");
}

/* MQTT 3.1.1 has no such property: the broker's message_size_limit, which
 * docs/operations.md recommends, refuses the large report when it is published. */
static void test_brokers_message_size_limit_protects_mqtt311(void)
{
	size_limit_case(4, 0, "allow_anonymous true\nmessage_size_limit 100000", "Dropped too large PUBLISH");
}

static void test_reconnects_and_resubscribes_after_broker_restart(void)
{
	struct broker b;
	if (!broker_start(&b, 0, NULL)) {
		CHECK(!"broker started");
		return;
	}
	struct tctx t;
	tctx_init(&t);
	struct config_mqtt cfg = test_config(b.port, "zmb-restart");
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	CHECK(run_until(&t, is_connected, 5000));
	int before = t.n_states;

	broker_stop(&b); /* persistence off: the broker forgets the subscription */
	CHECK(run_until(&t, is_disconnected, 3000));
	CHECK(t.n_states > before && t.states[before] == MQTT_DISCONNECTED);
	if (t.n_states > before)
		CHECK_CONTAINS(t.reason[before], "closed");
	/* a retry or two against a closed port */
	run_until(&t, NULL, 1200);
	CHECK(mqtt_session_state(t.s) != MQTT_CONNECTED);

	if (!broker_start(&b, b.port, NULL)) {
		CHECK(!"broker restarted");
		tctx_free(&t);
		return;
	}
	CHECK(run_until(&t, is_connected, 5000));
	CHECK(publish(b.port, 1, "zuul/after", "after restart", false));
	t.want = 1;
	CHECK(run_until(&t, has_wanted_msgs, 3000));
	CHECK_STR(t.payload[0], "after restart");
	CHECK_INT(count_state(&t, MQTT_CONNECTED), 2);
	tctx_free(&t);
	broker_stop(&b);
}

static void check_persistent_session_keeps_messages(int protocol)
{
	struct broker b;
	if (!broker_start(&b, 0, NULL)) {
		CHECK(!"broker started");
		return;
	}
	char id[32];
	snprintf(id, sizeof id, "zmb-persist-v%d", protocol);
	struct config_mqtt cfg = test_config(b.port, id);
	cfg.protocol = protocol;

	struct tctx t;
	tctx_init(&t);
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	CHECK(run_until(&t, is_connected, 5000));
	tctx_free(&t);

	/* the bridge is away */
	for (int i = 0; i < 3; i++) {
		char msg[16];
		snprintf(msg, sizeof msg, "away %d", i);
		CHECK(publish(b.port, 1, "zuul/away", msg, false));
	}

	tctx_init(&t);
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	t.want = 3;
	CHECK(run_until(&t, has_wanted_msgs, 5000));
	CHECK_INT(t.n_msgs, 3);
	CHECK_STR(t.payload[0], "away 0");
	CHECK_STR(t.payload[2], "away 2");
	tctx_free(&t);
	broker_stop(&b);
}

/* Sends log lines to a temporary file until capture_end, which returns them
 * (caller frees). */
static FILE *capture_start(void)
{
	FILE *f = tmpfile();
	log_set_stream(f);
	return f;
}

static char *capture_end(FILE *f)
{
	log_set_stream(stderr);
	struct strbuf sb = STRBUF_INIT;
	rewind(f);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		strbuf_append(&sb, buf, n);
	fclose(f);
	return strbuf_detach(&sb);
}

static void test_wrong_password_is_refused_with_reason_and_right_one_accepted(void)
{
	char pwfile[256];
	snprintf(pwfile, sizeof pwfile, "%s/passwd", tmpdir);
	char *argv[] = {"/usr/bin/mosquitto_passwd", "-c", "-b", pwfile, "bridge", "s3cret", NULL};
	CHECK_INT(run_wait(argv, NULL), 0);
	chmod(pwfile, 0600);
	char extra[400];
	snprintf(extra, sizeof extra, "allow_anonymous false\npassword_file %s", pwfile);
	struct broker b;
	if (!broker_start(&b, 0, extra)) {
		CHECK(!"broker started");
		return;
	}

	struct tctx t;
	tctx_init(&t);
	struct config_mqtt cfg = test_config(b.port, "zmb-auth");
	cfg.username = "bridge";
	cfg.password = "wrong";
	FILE *cap = capture_start();
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	/* the first refusal and at least one retry (backoff 1 s) */
	run_until(&t, NULL, 2600);
	tctx_free(&t);
	char *out = capture_end(cap);
	CHECK(count_state(&t, MQTT_DISCONNECTED) >= 2);
	CHECK_INT(count_state(&t, MQTT_CONNECTED), 0);
	int i = 0;
	while (i < t.n_states && t.states[i] != MQTT_DISCONNECTED)
		i++;
	if (i < t.n_states) {
		CHECK_CONTAINS(t.reason[i], "connection refused");
		CHECK_CONTAINS(t.reason[i], "not authorised");
	}
	/* logged once per outage, not once per retry; never the password */
	CHECK_INT(count_occurrences(out, "MQTT cannot connect"), 1);
	CHECK_CONTAINS(out, "not authorised");
	CHECK_NOT_CONTAINS(out, "wrong");
	free(out);

	tctx_init(&t);
	cfg.password = "s3cret";
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	CHECK(run_until(&t, is_connected, 5000));
	tctx_free(&t);
	broker_stop(&b);
}

static void test_shared_subscription_splits_messages_between_sessions(void)
{
	struct broker b;
	if (!broker_start(&b, 0, NULL)) {
		CHECK(!"broker started");
		return;
	}
	struct tctx t1, t2;
	tctx_init(&t1);
	memset(&t2, 0, sizeof t2);
	t2.loop = t1.loop; /* one loop drives both sessions */
	t1.peer = &t2;
	struct config_mqtt c1 = test_config(b.port, "zmb-share-1");
	c1.protocol = 5;
	c1.share_group = "bridges";
	struct config_mqtt c2 = c1;
	c2.client_id = "zmb-share-2";
	t1.s = mqtt_session_new(t1.loop, &c1, on_message, on_state, &t1);
	t2.s = mqtt_session_new(t2.loop, &c2, on_message, on_state, &t2);
	mqtt_session_start(t1.s);
	mqtt_session_start(t2.s);
	CHECK(run_until(&t1, is_connected, 5000));
	CHECK(run_until(&t2, is_connected, 5000));

	char lines[256];
	snprintf(lines, sizeof lines, "%s/lines", tmpdir);
	FILE *f = fopen(lines, "w");
	for (int i = 0; i < 20; i++)
		fprintf(f, "m%02d\n", i);
	fclose(f);
	char p[16];
	snprintf(p, sizeof p, "%d", b.port);
	char *argv[] = {
		"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p", p, "-q", "1", "-t", "zuul/share", "-l", NULL};
	CHECK_INT(run_wait(argv, lines), 0);

	bool seen[20] = {false};
	int dups = 0;
	for (int round = 0; round < 300 && t1.n_msgs + t2.n_msgs < 20; round++)
		run_until(&t1, NULL, 10);
	struct tctx *ts[] = {&t1, &t2};
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < ts[k]->n_msgs; i++) {
			int n = atoi(ts[k]->payload[i] + 1);
			if (n >= 0 && n < 20) {
				dups += seen[n];
				seen[n] = true;
			}
		}
	int distinct = 0;
	for (int i = 0; i < 20; i++)
		distinct += seen[i];
	CHECK_INT(t1.n_msgs + t2.n_msgs, 20);
	CHECK_INT(distinct, 20);
	CHECK_INT(dups, 0);
	CHECK(t1.n_msgs > 0);
	CHECK(t2.n_msgs > 0);
	mqtt_session_free(t2.s);
	tctx_free(&t1);
	broker_stop(&b);
}

/* A CA and a server certificate for 127.0.0.1 signed by it, plus an unrelated
 * CA. */
static bool make_certs(void)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
		 "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
		 "openssl req -x509 $K -keyout ca.key -out ca.crt -days 2 -subj "
		 "/CN=zmb-test-ca && "
		 "openssl req -x509 $K -keyout other.key -out other.crt -days 2 "
		 "-subj /CN=zmb-other-ca && "
		 "openssl req $K -keyout server.key -out server.csr -subj "
		 "/CN=127.0.0.1 && "
		 "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
		 "-CAcreateserial "
		 "-out server.crt -days 2 -extfile san.ext",
		 tmpdir);
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	pid_t pid = spawn(argv, NULL, "/dev/null");
	int status = 0;
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_tls_verifies_the_broker_unless_told_not_to(void)
{
	if (!make_certs()) {
		CHECK(!"openssl made the test certificates");
		return;
	}
	char extra[1024], ca[256], other[256];
	snprintf(ca, sizeof ca, "%s/ca.crt", tmpdir);
	snprintf(other, sizeof other, "%s/other.crt", tmpdir);
	snprintf(extra, sizeof extra,
		 "allow_anonymous true\ncafile %s\ncertfile %s/server.crt\nkeyfile "
		 "%s/server.key",
		 ca, tmpdir, tmpdir);
	struct broker b;
	if (!broker_start(&b, 0, extra)) {
		CHECK(!"TLS broker started");
		return;
	}
	struct config_mqtt cfg = test_config(b.port, "zmb-tls");
	cfg.tls.enabled = true;
	cfg.tls.ca_file = ca;

	/* the right CA: connected, and messages flow over TLS */
	struct tctx t;
	tctx_init(&t);
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	CHECK(t.s != NULL);
	mqtt_session_start(t.s);
	CHECK(run_until(&t, is_connected, 5000));
	char p[16];
	snprintf(p, sizeof p, "%d", b.port);
	char *argv[] = {"/usr/bin/mosquitto_pub",
			"-h",
			"127.0.0.1",
			"-p",
			p,
			"--cafile",
			ca,
			"-q",
			"1",
			"-t",
			"zuul/tls",
			"-m",
			"over tls",
			NULL};
	CHECK_INT(run_wait(argv, NULL), 0);
	t.want = 1;
	CHECK(run_until(&t, has_wanted_msgs, 3000));
	CHECK_STR(t.payload[0], "over tls");
	tctx_free(&t);

	/* a CA that did not sign the broker: refused, reported, never connected */
	cfg.tls.ca_file = other;
	tctx_init(&t);
	FILE *cap = capture_start();
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	CHECK(run_until(&t, is_disconnected, 3000) && t.n_states >= 2);
	run_until(&t, NULL, 300);
	tctx_free(&t);
	char *out = capture_end(cap);
	CHECK_INT(count_state(&t, MQTT_CONNECTED), 0);
	CHECK_CONTAINS(out, "MQTT cannot connect");
	CHECK_CONTAINS(out, "TLS");
	free(out);

	/* the same wrong CA with verify = false: connected */
	cfg.tls.verify = false;
	tctx_init(&t);
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	CHECK(run_until(&t, is_connected, 5000));
	tctx_free(&t);
	broker_stop(&b);
}

static void test_tls_to_a_closed_port_is_retried_without_spinning(void)
{
	char ca[256];
	snprintf(ca, sizeof ca, "%s/ca.crt", tmpdir);
	struct config_mqtt cfg = test_config(free_port(), "zmb-tls-closed");
	cfg.tls.enabled = true;
	cfg.tls.ca_file = ca;
	struct tctx t;
	tctx_init(&t);
	FILE *cap = capture_start();
	t.s = mqtt_session_new(t.loop, &cfg, on_message, on_state, &t);
	mqtt_session_start(t.s);
	clock_t cpu = clock();
	run_until(&t, NULL, 1500);
	long cpu_ms = (long)((clock() - cpu) * 1000 / CLOCKS_PER_SEC);
	tctx_free(&t);
	char *out = capture_end(cap);
	CHECK(count_state(&t, MQTT_DISCONNECTED) >= 2); /* failed, retried, failed */
	CHECK_INT(count_state(&t, MQTT_CONNECTED), 0);
	CHECK_INT(count_occurrences(out, "MQTT cannot connect"), 1);
	if (cpu_ms > 300)
		CHECK_INT(cpu_ms, 0); /* a dead socket polled in a loop burns the whole 1.5 s */
	free(out);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	mqtt_library_init();
	RUN(test_state_names_are_stable);
	RUN(test_connects_subscribes_and_receives_qos0_and_qos1);
	RUN(test_puback_is_written_only_after_flush);
	RUN(test_receive_maximum_is_the_brokers_window_under_mqtt5);
	RUN(test_mqtt311_window_is_the_brokers_own_limit);
	RUN(test_maximum_packet_size_keeps_large_publishes_away_under_mqtt5);
	RUN(test_brokers_message_size_limit_protects_mqtt311);
	RUN(test_reconnects_and_resubscribes_after_broker_restart);
	RUN_NAMED("persistent session (MQTT 3.1.1) keeps QoS 1 messages while the "
		  "bridge is away",
		  check_persistent_session_keeps_messages(4));
	RUN_NAMED("persistent session (MQTT 5, session expiry set) keeps QoS 1 "
		  "messages while the bridge is away",
		  check_persistent_session_keeps_messages(5));
	RUN(test_wrong_password_is_refused_with_reason_and_right_one_accepted);
	RUN(test_shared_subscription_splits_messages_between_sessions);
	RUN(test_tls_verifies_the_broker_unless_told_not_to);
	RUN(test_tls_to_a_closed_port_is_retried_without_spinning);
	mqtt_library_cleanup();
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return test_done();
}
