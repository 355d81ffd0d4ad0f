/* mqtt: the MQTT subscriber session. libmosquitto speaks the protocol; our poll
 * loop owns its socket, its timers and, above all, the moment acknowledgements
 * are written.
 *
 * Why the acknowledgement can wait for the commit (checked in
 * libmosquitto 2.0.11's source, the version Debian 12 ships; re-check these
 * points when it changes, the tests below catch most of them):
 *   - handle__publish() queues the QoS 1 PUBACK (send__puback -> packet__queue)
 * and only then calls on_message. packet__queue() writes to the socket at once
 * only when `!in_callback && threaded == mosq_ts_none`;
 * mosquitto_threaded_set(true) makes it queue only. (Without it the broker logs
 * the PUBACK while on_message still runs; DESIGN.md "Invariants".)
 *   - Every other client-side write goes through packet__write(), which only
 *     packet__queue() (disarmed as above) and mosquitto_loop_write() call.
 *     mosquitto_loop_misc() -> mosquitto__check_keepalive() queues PINGREQ;
 *     subscribe and disconnect queue too; mosquitto_loop_read() only reads (and
 * runs the TLS handshake, which carries no MQTT packet). So the only writers
 * are our mosquitto_loop_write() calls: in mqtt_session_flush(), in free, and
 * in the write-readiness callback, which is disarmed from the moment a message
 * reaches on_message until the next flush (`acks_pending`), so a PUBACK never
 * overtakes the bridge's commit. The out queue is FIFO:
 * CONNECT/SUBSCRIBE/PINGREQ queued behind a pending PUBACK wait for the flush
 * too, which is at most one loop turn.
 *   - QoS 2 is NOT covered: libmosquitto sends PUBREC when the PUBLISH arrives
 * and calls on_message only on PUBREL, so the broker may consider the message
 * handed over before the bridge saw it. Use qos = 1 (the default) for crash
 * safety.
 *
 * Other facts from the same source that shape this file:
 *   - mosquitto_loop_read() ignores its max_packets argument (it reads as many
 *     packets as there are QoS>0 messages in flight, at least one) and returns
 * early when a read hits EAGAIN; so we call it repeatedly until the socket is
 * drained.
 *   - A refused CONNACK calls on_connect with the reason, then on_disconnect.
 *     A failed TLS handshake closes the socket WITHOUT calling on_disconnect,
 * so we also notice a vanished socket after every libmosquitto call.
 *   - mosquitto_reconnect*() drops the out queue; unacknowledged messages of a
 *     persistent session are redelivered by the broker (possibly with dup set).
 *   - MQTT 5 CONNECT properties can only be set through
 * mosquitto_connect_bind_v5(), which connects blocking; it stores the
 * properties before validating the port, so a call with port -1 stores them and
 * fails without touching the network (same code up to 2.0.18; the MQTT 5
 * persistent-session test fails if not).
 *   - DNS resolution (getaddrinfo) inside mosquitto_connect_async() blocks the
 * loop; fine for an IP address or a name in /etc/hosts, noticeable for a slow
 * resolver.
 *   - A TCP connect that never completes is cut by libmosquitto's keepalive
 * check (mosquitto_loop_misc) after `keepalive` seconds, then retried.
 *   - struct mosquitto_message has no dup flag: every delivery, first or
 * repeated, reaches on_message alike; the bridge deduplicates.
 *   - The broker (mosquitto 2.0.11, measured in tests/test_mqtt.c) drops a
 * publish over the Maximum Packet Size we announce, but a dropped QoS 1 one
 * keeps its slot in our receive window until we reconnect: receive_maximum of
 * them stall delivery. The broker's message_size_limit avoids that
 * (docs/operations.md).
 *
 * Contract for callers: commit, then mqtt_session_flush(), then
 * mqtt_session_free(). free sends DISCONNECT only when nothing awaits a flush
 * (it would have to carry the uncommitted PUBACKs out first); otherwise it just
 * closes and the broker redelivers. on_message/on_state run inside
 * libmosquitto: they must not free the session. */
#include "mqtt.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"

/* Cap on packets read in one readiness callback: poll is level-triggered, so
 * what is left is read next turn, and one busy broker cannot starve the other
 * fds. */
#define MQTT_READ_BUDGET 256
/* MQTT 5 session expiry asked for when the session is persistent: a week covers
 * a long outage and an upgrade, and the broker still forgets a bridge that is
 * gone. */
#define MQTT_SESSION_EXPIRY_S (7u * 24u * 3600u)
/* How long free waits for the socket to take DISCONNECT. */
#define MQTT_DISCONNECT_WAIT_MS 1000

struct mqtt_session {
	struct loop *loop;
	const struct config_mqtt *cfg;
	mqtt_message_fn on_message;
	mqtt_state_fn on_state;
	void *data;

	struct mosquitto *mosq;
	enum mqtt_state state;
	bool started;
	bool connect_inited; /* connect_async ran once; later: reconnect_async */
	bool closing;        /* in mqtt_session_free: callbacks are ignored */
	bool acks_pending;   /* on_message ran since the last flush: no writes */

	int fd;     /* the socket we watch, -1 */
	int events; /* the mask it is watched for, -1 = unknown */

	uint64_t misc_timer;  /* 1 s tick for mosquitto_loop_misc (keepalive) */
	uint64_t retry_timer; /* pending reconnect, 0 = none */
	unsigned attempts;    /* failed connects since the last success: backoff exponent */
	unsigned seed;        /* rand_r state for the jitter */

	char **topics; /* subscribed filters, with the $share/GROUP/ prefix if any */
	size_t n_topics;
	int sub_mid; /* mid of the SUBSCRIBE we wait for, -1 = none */

	char *refusal;       /* CONNACK refusal text, for the on_disconnect that follows */
	bool failing;        /* the "cannot connect"/"disconnected" line was logged */
	char *logged_reason; /* ... with this reason: a new reason is logged again */
};

const char *mqtt_state_name(enum mqtt_state state)
{
	switch (state) {
	case MQTT_DISCONNECTED:
		return "disconnected";
	case MQTT_CONNECTING:
		return "connecting";
	case MQTT_CONNECTED:
		return "connected";
	}
	return "unknown";
}

enum mqtt_state mqtt_session_state(const struct mqtt_session *s) { return s ? s->state : MQTT_DISCONNECTED; }

/* mosquitto's max_inflight_messages default: what a 3.1.1 broker most likely allows. */
#define MQTT_311_WINDOW 20

bool mqtt_session_window_announced(const struct mqtt_session *s)
{
	return s && s->cfg->protocol == 5 && s->cfg->receive_maximum > 0;
}

unsigned mqtt_session_window(const struct mqtt_session *s)
{
	return mqtt_session_window_announced(s) ? (unsigned)s->cfg->receive_maximum : MQTT_311_WINDOW;
}

void mqtt_library_init(void) { mosquitto_lib_init(); }

void mqtt_library_cleanup(void) { mosquitto_lib_cleanup(); }

static void on_fd(struct loop *loop, int fd, int ready, void *data);
static void on_retry_timer(struct loop *loop, void *data);

static void set_state(struct mqtt_session *s, enum mqtt_state state, const char *reason)
{
	if (s->state == state)
		return;
	s->state = state;
	if (s->on_state)
		s->on_state(state, reason, s->data);
}

/* Brings the loop's view of the socket in line with libmosquitto's: the socket
 * may have been closed or replaced inside any libmosquitto call, and writes are
 * wanted only when something is queued and no acknowledgement awaits the
 * commit. */
static void sync_watch(struct mqtt_session *s)
{
	/* A socket left open while we wait to retry (a failed TLS connect) is dead:
	 * watching it would only spin on its error. The retry closes it. */
	int fd = s->closing || s->state == MQTT_DISCONNECTED ? -1 : mosquitto_socket(s->mosq);
	if (fd != s->fd) {
		if (s->fd >= 0)
			loop_unwatch(s->loop, s->fd);
		s->fd = fd;
		s->events = -1;
	}
	if (fd < 0)
		return;
	int events = LOOP_READ;
	if (!s->acks_pending && mosquitto_want_write(s->mosq))
		events |= LOOP_WRITE;
	if (events != s->events && loop_watch(s->loop, fd, events, on_fd, s) == 0)
		s->events = events;
}

/* Text for a libmosquitto error code; errno is read right after the failing
 * call. */
static const char *error_text(int rc, int err)
{
	if (rc == MOSQ_ERR_ERRNO)
		return strerror(err);
	if (rc == MOSQ_ERR_EAI)
		return gai_strerror(err);
	if (rc == MOSQ_ERR_CONN_LOST)
		return "broker closed the connection";
	if (rc == MOSQ_ERR_KEEPALIVE)
		return "keepalive timeout (no answer from the broker)";
	return mosquitto_strerror(rc);
}

/* Delay before the next attempt: min * 2^attempts, capped at max, plus up to
 * half again of jitter (still capped), so bridges restarted together do not
 * retry in step. */
static uint64_t backoff_ms(struct mqtt_session *s)
{
	uint64_t min_ms = (uint64_t)(s->cfg->reconnect_min_s > 0 ? s->cfg->reconnect_min_s : 1) * 1000u;
	uint64_t max_ms = (uint64_t)(s->cfg->reconnect_max_s > 0 ? s->cfg->reconnect_max_s : 60) * 1000u;
	if (max_ms < min_ms)
		max_ms = min_ms;
	uint64_t base = min_ms;
	for (unsigned i = 0; i < s->attempts && base < max_ms; i++)
		base *= 2;
	if (base > max_ms)
		base = max_ms;
	uint64_t delay = base + (uint64_t)rand_r(&s->seed) % (base / 2 + 1);
	return delay > max_ms ? max_ms : delay;
}

/* The connection is gone or could not be made: report it (logged once per
 * outage and reason, not once per retry) and schedule the next attempt. */
static void went_down(struct mqtt_session *s, const char *why, bool refused)
{
	if (s->closing || s->retry_timer)
		return;
	/* libmosquitto's texts end in a period; ours go inside a sentence. */
	char reason[200];
	snprintf(reason, sizeof reason, "%s", why);
	size_t n = strlen(reason);
	if (n > 0 && reason[n - 1] == '.')
		reason[n - 1] = '\0';
	enum mqtt_state prev = s->state;
	set_state(s, MQTT_DISCONNECTED, reason);
	enum log_level level = refused ? ZLOG_ERROR : ZLOG_WARN;
	if (prev == MQTT_CONNECTED)
		log_msgf(level, "MQTT disconnected from %s:%d: %s; retrying with backoff", s->cfg->host, s->cfg->port,
			 reason);
	else if (!s->failing || !s->logged_reason || strcmp(s->logged_reason, reason) != 0)
		log_msgf(level, "MQTT cannot connect to %s:%d: %s; retrying with backoff", s->cfg->host, s->cfg->port,
			 reason);
	else
		log_msgf(ZLOG_DEBUG, "MQTT connect to %s:%d failed again: %s", s->cfg->host, s->cfg->port, reason);
	s->failing = true;
	free(s->logged_reason);
	s->logged_reason = xstrdup(reason);

	uint64_t delay = backoff_ms(s);
	s->attempts++;
	log_msgf(ZLOG_DEBUG, "MQTT next connect attempt in %llu ms", (unsigned long long)delay);
	s->retry_timer = loop_timer_add(s->loop, delay, on_retry_timer, s);
}

/* After every libmosquitto call: a socket that vanished without on_disconnect
 * (TLS handshake failure) still means we are down; then the watch follows the
 * socket. */
static void after_io(struct mqtt_session *s, int rc, int err)
{
	if (s->closing)
		return;
	if (mosquitto_socket(s->mosq) < 0 && s->state != MQTT_DISCONNECTED)
		went_down(s, rc ? error_text(rc, err) : "connection closed", false);
	sync_watch(s);
}

static void start_connect(struct mqtt_session *s)
{
	int rc;
	/* Reported before the call: a connect that fails inside it (refused at once,
	 * DNS, TLS) is then a CONNECTING -> DISCONNECTED pair with its reason, like
	 * any other failed attempt. */
	set_state(s, MQTT_CONNECTING, NULL);
	if (!s->connect_inited) {
		rc = mosquitto_connect_async(s->mosq, s->cfg->host, s->cfg->port, s->cfg->keepalive);
		if (rc != MOSQ_ERR_INVAL)
			s->connect_inited = true;
	} else {
		log_msgf(ZLOG_DEBUG, "MQTT reconnecting to %s:%d (attempt %u)", s->cfg->host, s->cfg->port,
			 s->attempts + 1);
		rc = mosquitto_reconnect_async(s->mosq);
	}
	int err = errno;
	if (rc != MOSQ_ERR_SUCCESS)
		went_down(s, error_text(rc, err), false);
	sync_watch(s);
}

static void on_retry_timer(struct loop *loop, void *data)
{
	(void)loop;
	struct mqtt_session *s = data;
	s->retry_timer = 0;
	start_connect(s);
}

static void on_misc_timer(struct loop *loop, void *data)
{
	struct mqtt_session *s = data;
	if (mosquitto_socket(s->mosq) >= 0) {
		int rc = mosquitto_loop_misc(s->mosq);
		after_io(s, rc, errno);
	}
	s->misc_timer = loop_timer_add(loop, 1000, on_misc_timer, s);
}

/* Acknowledges what we read at the TCP level at once. Our PUBACKs wait for the commit
 * (up to ACK_DELAY_MS), and a broker with Nagle's algorithm on (mosquitto's default,
 * set_tcp_nodelay false) holds its next small PUBLISH until the previous segment is
 * acknowledged: without a quick ACK every other report waited for our commit. Linux
 * clears TCP_QUICKACK after use, so it is set again after every read. */
static void quick_ack(int fd)
{
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

/* Reads until the socket has nothing more this turn (see the top comment). */
static int read_available(struct mqtt_session *s)
{
	for (int i = 0; i < MQTT_READ_BUDGET; i++) {
		errno = 0;
		int rc = mosquitto_loop_read(s->mosq, 1);
		int err = errno;
		if (rc != MOSQ_ERR_SUCCESS) {
			errno = err;
			return rc;
		}
		int fd = mosquitto_socket(s->mosq);
		if (fd >= 0)
			quick_ack(fd);
		if (fd < 0 || err == EAGAIN || err == EWOULDBLOCK)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 0) <= 0)
			break;
	}
	return MOSQ_ERR_SUCCESS;
}

/* libmosquitto's TLS handshake treats SSL_ERROR_SYSCALL as "try again", so a
 * TCP connect refused after EINPROGRESS, or a peer that hangs up mid-handshake,
 * would leave a dead socket that polls ready forever. Returns the reason, or
 * NULL. */
static const char *tls_connect_failure(int fd)
{
	int soerr = 0;
	socklen_t len = sizeof soerr;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0)
		return strerror(soerr);
	char byte;
	if (recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		return "connection refused or closed during the TLS handshake";
	return NULL;
}

static void on_fd(struct loop *loop, int fd, int ready, void *data)
{
	(void)loop;
	struct mqtt_session *s = data;
	int rc = MOSQ_ERR_SUCCESS, err = 0;
	if (s->cfg->tls.enabled && s->state == MQTT_CONNECTING) {
		const char *failure = tls_connect_failure(fd);
		if (failure) {
			went_down(s, failure, false);
			sync_watch(s);
			return;
		}
	}
	if (ready & LOOP_READ) {
		rc = read_available(s);
		err = errno;
	}
	if (rc == MOSQ_ERR_SUCCESS && (ready & LOOP_WRITE) && mosquitto_socket(s->mosq) >= 0) {
		/* A TLS handshake that waits for writability is advanced by loop_read (the
		 * public way into net__socket_connect_tls); otherwise it finds EAGAIN. */
		if (s->cfg->tls.enabled && s->state == MQTT_CONNECTING) {
			rc = mosquitto_loop_read(s->mosq, 1);
			err = errno;
		}
		if (rc == MOSQ_ERR_SUCCESS && !s->acks_pending && mosquitto_socket(s->mosq) >= 0 &&
		    mosquitto_want_write(s->mosq)) {
			rc = mosquitto_loop_write(s->mosq, 1);
			err = errno;
		}
	}
	after_io(s, rc, err);
}

void mqtt_session_flush(struct mqtt_session *s)
{
	if (!s)
		return;
	s->acks_pending = false;
	int rc = MOSQ_ERR_SUCCESS, err = 0;
	if (mosquitto_socket(s->mosq) >= 0 && mosquitto_want_write(s->mosq)) {
		rc = mosquitto_loop_write(s->mosq, 1);
		err = errno;
	}
	after_io(s, rc, err);
}

/* ---- libmosquitto callbacks (run inside our loop_read/loop_write/loop_misc)
 * ---- */

static void cb_connect(struct mosquitto *mosq, void *obj, int rc, int flags, const mosquitto_property *props)
{
	(void)flags;
	(void)props;
	struct mqtt_session *s = obj;
	if (s->closing)
		return;
	if (rc != 0) {
		/* MQTT 3.1.1 answers 1..5, MQTT 5 reason codes >= 0x80. */
		const char *text = s->cfg->protocol == 5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc);
		const char *prefix = "Connection Refused: ";
		if (strncmp(text, prefix, strlen(prefix)) == 0)
			text += strlen(prefix);
		struct strbuf sb = STRBUF_INIT;
		strbuf_printf(&sb, "connection refused: %s", text);
		if (sb.len > 0 && sb.data[sb.len - 1] == '.')
			sb.data[--sb.len] = '\0';
		free(s->refusal);
		s->refusal = strbuf_detach(&sb);
		return; /* on_disconnect follows and schedules the retry */
	}
	s->attempts = 0;
	s->sub_mid = -1;
	if (s->n_topics == 0) {
		set_state(s, MQTT_CONNECTED, NULL);
		return;
	}
	int mid = 0;
	int src = mosquitto_subscribe_multiple(mosq, &mid, (int)s->n_topics, s->topics, s->cfg->qos, 0, NULL);
	if (src != MOSQ_ERR_SUCCESS) {
		log_msgf(ZLOG_ERROR, "MQTT subscribe to %zu topics failed: %s; reconnecting", s->n_topics,
			 mosquitto_strerror(src));
		mosquitto_disconnect(mosq);
		return;
	}
	s->sub_mid = mid;
}

static void cb_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
			 const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	struct mqtt_session *s = obj;
	if (s->closing || mid != s->sub_mid)
		return;
	s->sub_mid = -1;
	size_t ok = 0;
	for (int i = 0; i < count && (size_t)i < s->n_topics; i++) {
		if (granted[i] >= 0x80) {
			const char *why = s->cfg->protocol == 5 ? mosquitto_reason_string(granted[i]) : "refused";
			log_msgf(ZLOG_ERROR, "MQTT broker refused the subscription to %s: %s (0x%02x)", s->topics[i],
				 why, (unsigned)granted[i]);
		} else {
			ok++;
		}
	}
	s->failing = false;
	free(s->logged_reason);
	s->logged_reason = NULL;
	log_msgf(ZLOG_INFO, "MQTT connected to %s:%d, subscribed to %zu topics", s->cfg->host, s->cfg->port, ok);
	set_state(s, MQTT_CONNECTED, NULL);
}

static void cb_disconnect(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	int err = errno;
	struct mqtt_session *s = obj;
	if (s->closing)
		return;
	char *refusal = s->refusal;
	s->refusal = NULL;
	if (refusal) {
		went_down(s, refusal, true);
	} else if (rc >= 0x80) {
		/* MQTT 5 DISCONNECT sent by the broker carries a reason code. */
		struct strbuf sb = STRBUF_INIT;
		strbuf_printf(&sb, "broker disconnected us: %s", mosquitto_reason_string(rc));
		went_down(s, strbuf_str(&sb), false);
		strbuf_free(&sb);
	} else {
		went_down(s, rc ? error_text(rc, err) : "disconnected", false);
	}
	free(refusal);
}

static void cb_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
		       const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	struct mqtt_session *s = obj;
	if (s->closing)
		return;
	/* From here until the next flush the queued PUBACK must stay queued. */
	s->acks_pending = true;
	struct mqtt_message msg = {
		.topic = m->topic,
		.payload = m->payload ? m->payload : "",
		.len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0,
		.qos = m->qos,
		.retain = m->retain,
	};
	if (s->on_message)
		s->on_message(&msg, s->data);
}

static void cb_log(struct mosquitto *mosq, void *obj, int level, const char *text)
{
	(void)mosq;
	(void)obj;
	(void)level;
	log_msgf(ZLOG_DEBUG, "libmosquitto: %s", text);
}

/* ---- life cycle ---- */

/* MQTT 5 CONNECT properties, stored once for every (re)connect. libmosquitto keeps
 * one list, so all of them go in one call. Port -1 makes the call store them and
 * return before connecting (top comment). */
static int set_connect_properties(struct mosquitto *mosq, const struct config_mqtt *cfg)
{
	mosquitto_property *props = NULL;
	int rc = MOSQ_ERR_SUCCESS;
	/* clean_start=false alone keeps nothing in MQTT 5: the session expires at
	 * disconnect unless CONNECT asks for an expiry interval. */
	if (!cfg->clean_session)
		rc = mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, MQTT_SESSION_EXPIRY_S);
	/* The broker then drops a larger publish instead of sending it (MQTT 5 3.1.2.11.4):
	 * libmosquitto would otherwise allocate the whole packet before anyone could refuse
	 * it. */
	if (rc == MOSQ_ERR_SUCCESS && cfg->maximum_packet_size > 0)
		rc = mosquitto_property_add_int32(&props, MQTT_PROP_MAXIMUM_PACKET_SIZE,
						  (uint32_t)cfg->maximum_packet_size);
	if (rc == MOSQ_ERR_SUCCESS && props) {
		rc = mosquitto_connect_bind_v5(mosq, cfg->host, -1, cfg->keepalive, NULL, props);
		rc = rc == MOSQ_ERR_INVAL ? MOSQ_ERR_SUCCESS : rc;
	}
	mosquitto_property_free_all(&props);
	if (rc != MOSQ_ERR_SUCCESS) {
		log_msgf(ZLOG_ERROR, "MQTT: cannot set the CONNECT properties (session expiry, maximum packet "
				     "size %d): %s", cfg->maximum_packet_size, mosquitto_strerror(rc));
		return -1;
	}
	return 0;
}

static int configure(struct mqtt_session *s)
{
	const struct config_mqtt *cfg = s->cfg;
	struct mosquitto *mosq = s->mosq;
	int rc;
	int version = cfg->protocol == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311;
	if ((rc = mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, version)) != MOSQ_ERR_SUCCESS) {
		log_msgf(ZLOG_ERROR, "MQTT: cannot select protocol %d: %s", cfg->protocol, mosquitto_strerror(rc));
		return -1;
	}
	/* Sent in CONNECT (MQTT 5 only): the broker's in-flight window towards us. */
	if (cfg->protocol == 5 && cfg->receive_maximum > 0 &&
	    (rc = mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, cfg->receive_maximum)) != MOSQ_ERR_SUCCESS) {
		log_msgf(ZLOG_ERROR, "MQTT: cannot set the receive maximum %d: %s", cfg->receive_maximum,
			 mosquitto_strerror(rc));
		return -1;
	}
	/* Queue, never write, from inside libmosquitto: see the top of this file. */
	if ((rc = mosquitto_threaded_set(mosq, true)) != MOSQ_ERR_SUCCESS) {
		log_msgf(ZLOG_ERROR, "MQTT: mosquitto_threaded_set: %s", mosquitto_strerror(rc));
		return -1;
	}
	if (cfg->username && (rc = mosquitto_username_pw_set(mosq, cfg->username, cfg->password)) != MOSQ_ERR_SUCCESS) {
		log_msgf(ZLOG_ERROR, "MQTT: cannot set the username: %s", mosquitto_strerror(rc));
		return -1;
	}
	if (cfg->tls.enabled) {
		if (cfg->tls.ca_file || cfg->tls.ca_dir)
			rc = mosquitto_tls_set(mosq, cfg->tls.ca_file, cfg->tls.ca_dir, cfg->tls.cert_file,
					       cfg->tls.key_file, NULL);
		else if (!(rc = mosquitto_int_option(mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1)) &&
			 (cfg->tls.cert_file || cfg->tls.key_file))
			/* mosquitto_tls_set needs a CA; the client certificate rides along. */
			rc = MOSQ_ERR_INVAL;
		if (rc != MOSQ_ERR_SUCCESS) {
			log_msgf(ZLOG_ERROR,
				 "MQTT: TLS setup failed (ca_file %s, ca_dir %s, cert_file %s, "
				 "key_file %s): %s",
				 cfg->tls.ca_file ? cfg->tls.ca_file : "-", cfg->tls.ca_dir ? cfg->tls.ca_dir : "-",
				 cfg->tls.cert_file ? cfg->tls.cert_file : "-",
				 cfg->tls.key_file ? cfg->tls.key_file : "-",
				 rc == MOSQ_ERR_INVAL ? "a file is missing or unreadable, or cert_file without a CA"
						      : mosquitto_strerror(rc));
			return -1;
		}
		if (!cfg->tls.verify) {
			/* 0 == SSL_VERIFY_NONE; libmosquitto's default is SSL_VERIFY_PEER. */
			if ((rc = mosquitto_tls_opts_set(mosq, 0, NULL, NULL)) != MOSQ_ERR_SUCCESS ||
			    (rc = mosquitto_tls_insecure_set(mosq, true)) != MOSQ_ERR_SUCCESS) {
				log_msgf(ZLOG_ERROR, "MQTT: cannot turn TLS verification off: %s",
					 mosquitto_strerror(rc));
				return -1;
			}
		}
	}
	if (cfg->protocol == 5 && set_connect_properties(mosq, cfg) != 0)
		return -1;
	mosquitto_connect_v5_callback_set(mosq, cb_connect);
	mosquitto_disconnect_v5_callback_set(mosq, cb_disconnect);
	mosquitto_subscribe_v5_callback_set(mosq, cb_subscribe);
	mosquitto_message_v5_callback_set(mosq, cb_message);
	mosquitto_log_callback_set(mosq, cb_log);
	return 0;
}

struct mqtt_session *mqtt_session_new(struct loop *loop, const struct config_mqtt *cfg, mqtt_message_fn on_message,
				      mqtt_state_fn on_state, void *data)
{
	struct mqtt_session *s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->cfg = cfg;
	s->on_message = on_message;
	s->on_state = on_state;
	s->data = data;
	s->state = MQTT_DISCONNECTED;
	s->fd = -1;
	s->events = -1;
	s->sub_mid = -1;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->seed = (unsigned)getpid() ^ (unsigned)ts.tv_nsec ^ (unsigned)(uintptr_t)s;

	s->n_topics = cfg->n_topics;
	s->topics = xcalloc(cfg->n_topics + 1, sizeof *s->topics);
	for (size_t i = 0; i < cfg->n_topics; i++) {
		struct strbuf sb = STRBUF_INIT;
		if (cfg->share_group)
			strbuf_printf(&sb, "$share/%s/", cfg->share_group);
		strbuf_puts(&sb, cfg->topics[i]);
		s->topics[i] = strbuf_detach(&sb);
	}

	errno = 0;
	s->mosq = mosquitto_new(cfg->client_id, cfg->clean_session, s);
	if (!s->mosq) {
		log_msgf(ZLOG_ERROR, "MQTT: cannot create the client (client_id %s): %s",
			 cfg->client_id ? cfg->client_id : "(none)",
			 errno == EINVAL ? "a persistent session needs a client_id" : strerror(errno));
		mqtt_session_free(s);
		return NULL;
	}
	if (configure(s) < 0) {
		mqtt_session_free(s);
		return NULL;
	}
	return s;
}

int mqtt_session_start(struct mqtt_session *s)
{
	if (!s || s->started)
		return -1;
	s->started = true;
	s->misc_timer = loop_timer_add(s->loop, 1000, on_misc_timer, s);
	start_connect(s);
	return 0;
}

/* Best effort: DISCONNECT is written only when no acknowledgement awaits a
 * commit (it would have to go out first); otherwise the socket is just closed
 * and the broker redelivers. Waits at most MQTT_DISCONNECT_WAIT_MS for the
 * socket. */
static void send_disconnect(struct mqtt_session *s)
{
	if (s->acks_pending || mosquitto_socket(s->mosq) < 0 || s->state == MQTT_DISCONNECTED)
		return;
	if (mosquitto_disconnect(s->mosq) != MOSQ_ERR_SUCCESS)
		return;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (mosquitto_socket(s->mosq) >= 0 && mosquitto_want_write(s->mosq)) {
		if (mosquitto_loop_write(s->mosq, 1) != MOSQ_ERR_SUCCESS)
			break;
		int fd = mosquitto_socket(s->mosq);
		if (fd < 0 || !mosquitto_want_write(s->mosq))
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = MQTT_DISCONNECT_WAIT_MS -
			    ((now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L);
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
	}
}

void mqtt_session_free(struct mqtt_session *s)
{
	if (!s)
		return;
	/* Callbacks fired by the DISCONNECT below must not schedule a reconnect. */
	s->closing = true;
	if (s->mosq)
		send_disconnect(s);
	if (s->fd >= 0)
		loop_unwatch(s->loop, s->fd);
	loop_timer_cancel(s->loop, s->misc_timer);
	loop_timer_cancel(s->loop, s->retry_timer);
	if (s->mosq)
		mosquitto_destroy(s->mosq);
	for (size_t i = 0; i < s->n_topics; i++)
		free(s->topics[i]);
	free(s->topics);
	free(s->refusal);
	free(s->logged_reason);
	free(s);
}
